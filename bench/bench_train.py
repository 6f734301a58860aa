"""
bench/bench_train.py: training throughput (tokens/s), MFU and peak memory on one GPU, measured on train.py's
own step with train.py's settings (torch.compile on, dropout 0.1).

    python bench/bench_train.py                 # phi-1-small and phi-1 at 2048 tokens, fp16 and bf16, Triton vs SDPA
    python bench/bench_train.py --models phi-1 --dtypes bfloat16 --attention triton --micro-batch 16 --no-compile
    python bench/bench_train.py --device cpu --models tiny --dtypes float32 --attention sdpa --seq 64 --steps 2 --no-compile

Each row runs in a process of its own, as a training run does: its compilation, its autotuning and its
memory peak are its own, and dynamo's recompile limit is never reached by rows piling up in one process.
A row runs train.train_step exactly as training does (autocast, fp16 loss scaling, backward with gradient
accumulation, unscale, clipping, fused AdamW) on random tokens: --warmup steps (the first one compiles;
its time is reported), then the median of --steps timed steps. MFU = model.flops_per_token(T)
(6N + 12*L*d*T) x tokens/s / the GPU's peak dense 16-bit FLOP/s from train.PEAK_FLOPS. Peak memory is the
CUDA allocator's max allocated (tensors) and max reserved (what it took from the card).

Goal: >= 50% MFU for phi-1 on one H100. For scale: the paper's budget (phi-1-base, ~51B tokens in
770 A100-hours) implies about 53% on A100s; MosaicML reports about 42% for a 1B model on H100s.
"""

import argparse
import datetime
import json
import pathlib
import statistics
import subprocess
import sys
import time
import types

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repo root: `python bench/bench_train.py` from anywhere

import train
from model import Phi, PhiConfig
from prepare import atomic_write


def bench(name, dtype, attention, args, device):
    """One row: {tokens_per_sec, mfu, compile_s, max_allocated_gib, max_reserved_gib}."""
    torch.manual_seed(0)
    cfg = types.SimpleNamespace(**train.DEFAULTS)  # the paper's AdamW settings
    with torch.device(device):
        model = Phi(PhiConfig.preset(name, block_size=args.seq, attn_pdrop=args.dropout, resid_pdrop=args.dropout,
                                     attention=attention, gradient_checkpointing=args.gradient_checkpointing))
    optimizer = train.configure_optimizer(model, cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == "float16")
    autocast = torch.autocast(device.type, dtype=train.DTYPES[dtype], enabled=dtype != "float32")
    if args.compile:
        train.compile_blocks(model)  # as train.py compiles
    xy = torch.randint(0, 50295, (args.accum, args.micro_batch, args.seq + 1), device=device)
    batches = [(b[:, :-1], b[:, 1:]) for b in xy]
    times = []
    for _ in range(args.warmup + args.steps):
        sync(device)
        t0 = time.perf_counter()
        train.train_step(model, optimizer, scaler, iter(batches), args.accum, cfg.grad_clip, autocast)
        sync(device)
        times.append(time.perf_counter() - t0)
    tokens_per_sec = args.accum * args.micro_batch * args.seq / statistics.median(times[args.warmup:])
    peak = train.peak_flops_per_gpu(device, args.peak_flops)
    memory = train.peak_memory(device)
    return {"tokens_per_sec": tokens_per_sec, "mfu": model.flops_per_token(args.seq) * tokens_per_sec / peak if peak else None,
            "compile_s": times[0] if args.compile else None, "max_allocated_gib": memory.get("cuda_max_allocated_gib"),
            "max_reserved_gib": memory.get("cuda_max_reserved_gib")}


def run_row(name, dtype, attention, argv, timeout):
    """One row in a fresh process (this script with --row); its result, or what went wrong, as a dict."""
    cmd = [sys.executable, __file__, *argv, "--row", name, dtype, attention]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    if "OutOfMemoryError" in proc.stderr:
        return {"error": "out of memory"}
    last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return {"error": last[:120]}


def cells(row):
    if "error" in row:
        return [row["error"], "", "", ""]
    memory = row["max_allocated_gib"] is not None and f"{row['max_allocated_gib']:.1f} / {row['max_reserved_gib']:.1f} GiB"
    return [f"{row['tokens_per_sec']:,.0f}", f"{row['mfu']:.1%}" if row["mfu"] else "n/a",
            f"{row['compile_s']:.0f} s" if row["compile_s"] is not None else "off", memory or "n/a"]


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
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                        help="torch.compile the model, as train.py does (default: on)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps; the median is reported (default: %(default)s)")
    parser.add_argument("--peak-flops", type=float, default=0.0, help="peak FLOP/s of the GPU if it is not in train.PEAK_FLOPS")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--row-timeout", type=int, default=900, help="seconds one row may take (default: %(default)s)")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--row", nargs=3, metavar=("MODEL", "DTYPE", "ATTENTION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("bench_train.py: no CUDA GPU here; it measures one GPU (smoke test on a CPU: --device cpu --models tiny)")
    device = torch.device(args.device)
    if args.row:  # the child process of one row: print its result as one JSON line
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
        return print(json.dumps(bench(*args.row, args, device)))

    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    peak = train.peak_flops_per_gpu(device, args.peak_flops)
    header = (f"{hardware}" + (f" (peak {peak / 1e12:.0f} TFLOP/s)" if peak else "") +
              f" | torch {torch.__version__}, triton {triton_version()}, CUDA {torch.version.cuda} | {datetime.date.today()}\n"
              f"{args.accum} x {args.micro_batch} sequences x {args.seq} tokens per step, dropout {args.dropout}, "
              f"compile {'on' if args.compile else 'off'}, gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}; "
              f"median of {args.steps} steps after {args.warmup}; one process per row")
    print(header + "\n")
    print("| model | dtype | attention | tokens/s | MFU | first step (compile) | peak memory, allocated / reserved |")
    print("|---|---|---|---:|---:|---:|---:|")
    rows = []
    for name in args.models:
        for dtype in args.dtypes:
            for attention in args.attention:
                row = {"model": name, "dtype": dtype, "attention": attention,
                       **run_row(name, dtype, attention, sys.argv[1:], args.row_timeout)}
                rows.append(row)
                print(f"| {name} | {dtype} | {attention} | " + " | ".join(cells(row)) + " |", flush=True)
                if args.json:  # after every row: a run stopped midway keeps the rows it measured
                    with atomic_write(args.json) as f:
                        json.dump({"header": header, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
