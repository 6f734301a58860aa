"""
bench_train.py: training throughput (tokens/s) and MFU on one GPU, measured on train.py's own step.

    python bench_train.py                       # phi-1-small and phi-1 at 2048 tokens, fp16 and bf16, Triton vs SDPA
    python bench_train.py --models phi-1 --dtypes bfloat16 --attention triton --micro-batch 16 --compile
    python bench_train.py --device cpu --models tiny --dtypes float32 --attention sdpa --seq 64 --steps 2   # smoke test

Each row runs train.train_step exactly as training does (autocast, fp16 loss scaling, backward with
gradient accumulation, unscale, clipping, fused AdamW) on random tokens: --warmup steps, then the
median of --steps timed steps. MFU = model.flops_per_token(T) (6N + 12*L*d*T) x tokens/s / the GPU's
peak dense 16-bit FLOP/s from train.PEAK_FLOPS.

Goal: >= 50% MFU for phi-1 on one H100. For scale: the paper's budget (phi-1-base, ~51B tokens in
770 A100-hours) implies about 53% on A100s; MosaicML reports about 42% for a 1B model on H100s.
"""

import argparse
import datetime
import statistics
import sys
import time
import types

import torch

import train
from model import Phi, PhiConfig


def bench(name, dtype, attention, args, device):
    """(tokens/s, MFU or None, peak memory in GiB or None) of one configuration."""
    torch.manual_seed(0)
    cfg = types.SimpleNamespace(**train.DEFAULTS)  # the paper's AdamW settings
    with torch.device(device):
        model = Phi(PhiConfig.preset(name, block_size=args.seq, attn_pdrop=args.dropout, resid_pdrop=args.dropout,
                                     attention=attention, gradient_checkpointing=args.gradient_checkpointing))
    optimizer = train.configure_optimizer(model, cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == "float16")
    autocast = torch.autocast(device.type, dtype=train.DTYPES[dtype], enabled=dtype != "float32")
    step_model = torch.compile(model) if args.compile else model
    xy = torch.randint(0, 50295, (args.accum, args.micro_batch, args.seq + 1), device=device)
    batches = [(b[:, :-1], b[:, 1:]) for b in xy]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(args.warmup + args.steps):
        sync(device)
        t0 = time.perf_counter()
        train.train_step(step_model, optimizer, scaler, iter(batches), args.accum, cfg.grad_clip, autocast)
        sync(device)
        times.append(time.perf_counter() - t0)
    tokens_per_sec = args.accum * args.micro_batch * args.seq / statistics.median(times[args.warmup:])
    peak = train.peak_flops_per_gpu(device, args.peak_flops)
    mfu = model.flops_per_token(args.seq) * tokens_per_sec / peak if peak else None
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return tokens_per_sec, mfu, memory


def triton_version():
    try:
        import triton
        return triton.__version__
    except ImportError:
        return "not installed"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["phi-1-small", "phi-1"])
    parser.add_argument("--dtypes", nargs="+", default=["float16", "bfloat16"], choices=list(train.DTYPES))
    parser.add_argument("--attention", nargs="+", default=["triton", "sdpa"], choices=["triton", "sdpa"])
    parser.add_argument("--seq", type=int, default=2048, help="sequence length (default: %(default)s)")
    parser.add_argument("--micro-batch", type=int, default=8, help="sequences per forward/backward (default: %(default)s)")
    parser.add_argument("--accum", type=int, default=4, help="micro-batches per optimizer step (default: %(default)s)")
    parser.add_argument("--dropout", type=float, default=0.1, help="attention and residual dropout (default: the paper's 0.1)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps; the median is reported (default: %(default)s)")
    parser.add_argument("--peak-flops", type=float, default=0.0, help="peak FLOP/s of the GPU if it is not in train.PEAK_FLOPS")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("bench_train.py: no CUDA GPU here; it measures one GPU (smoke test on a CPU: --device cpu --models tiny)")
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        hardware = torch.cuda.get_device_name(device)
    else:
        hardware = "CPU"
    peak = train.peak_flops_per_gpu(device, args.peak_flops)
    print(f"{hardware} (peak {peak / 1e12:.0f} TFLOP/s)" if peak else hardware,
          f"| torch {torch.__version__}, triton {triton_version()}, CUDA {torch.version.cuda} | {datetime.date.today()}")
    print(f"{args.accum} x {args.micro_batch} sequences x {args.seq} tokens per step, dropout {args.dropout}, "
          f"compile {'on' if args.compile else 'off'}, gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}; "
          f"median of {args.steps} steps after {args.warmup}\n")
    print("| model | dtype | attention | tokens/s | MFU | peak memory |")
    print("|---|---|---|---:|---:|---:|")
    for name in args.models:
        for dtype in args.dtypes:
            for attention in args.attention:
                try:
                    tokens_per_sec, mfu, memory = bench(name, dtype, attention, args, device)
                    cells = [f"{tokens_per_sec:,.0f}", f"{mfu:.1%}" if mfu else "n/a", f"{memory:.1f} GiB" if memory else "n/a"]
                except torch.cuda.OutOfMemoryError:
                    cells = ["out of memory", "", ""]
                except Exception as e:  # one broken configuration must not lose the rest of the table
                    cells = [f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:60]}", "", ""]
                print(f"| {name} | {dtype} | {attention} | " + " | ".join(cells) + " |", flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
