"""
kernels/bench.py: speed of our Triton FlashAttention next to torch's scaled_dot_product_attention.

    python kernels/bench.py                          # phi-1 shapes: 32x64 and 16x64 heads, seq 2048, causal
    python kernels/bench.py --quick --json out.json  # phi-1, fp16, ours vs SDPA: meant for ~1 minute on an H100
    python kernels/bench.py --batch 4 --seq 4096 --dropout 0.1
    python kernels/bench.py --dry-run --json /tmp/bench.json   # CPU, interpreter, tiny shape: proves the script runs

For each head count, dtype (fp16, bf16) and dropout (0 and --dropout) it times forward, backward
and forward+backward of our kernel, of SDPA as the model calls it ("sdpa": torch picks the
backend) and of every SDPA backend on its own (flash, cuDNN, memory-efficient; not in --quick),
all in one run, as medians of triton.testing.do_bench. First calls (Triton's compile and
autotune, SDPA's kernel choice) are made before timing. Without dropout our output must match
SDPA's first. It prints a markdown table with the GPU, versions and date, and with --json writes
the same rows as one JSON object {device, versions, date, shape, rows} for a GPU check to quote.

FLOPs, per (batch, head): the forward is two T x T x D matmuls (Q K^T, then P V), 4 T^2 D;
causal attention needs only half of them. The backward is five such matmuls (S and dP again,
dV, dQ, dK): 2.5x the forward. These are the counts FlashAttention's papers use.

--dry-run runs this same code on the CPU: TRITON_INTERPRET=1 (set here, before Triton is imported),
batch 1, 1 head, seq 32, fp16 only, and a wall-clock timer in place of do_bench (CUDA events). Its
numbers mean nothing; it checks the script, the JSON and the SDPA refusals end to end.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import sys
import time
import warnings

import torch
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python kernels/bench.py` from anywhere


def sdpa_impls(every_backend):
    """name -> function(q, k, v, p): SDPA as the model calls it, and, if asked, each backend alone."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def sdpa(q, k, v, p):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)

    def only(backend):
        def run(q, k, v, p):
            with sdpa_kernel(backend):
                return sdpa(q, k, v, p)
        return run

    impls = {"sdpa": sdpa}
    if every_backend:
        impls.update({"sdpa flash": only(SDPBackend.FLASH_ATTENTION), "sdpa cuDNN": only(SDPBackend.CUDNN_ATTENTION),
                      "sdpa efficient": only(SDPBackend.EFFICIENT_ATTENTION)})
    return impls


def median_ms(fn, grad_to_none, cuda):
    """Median milliseconds of fn(): triton's do_bench on a GPU, a wall clock in the dry run."""
    if cuda:
        from triton.testing import do_bench
        return do_bench(fn, grad_to_none=grad_to_none, return_mode="median")
    times = []
    for _ in range(3):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def time_one(fn, q, k, v, p, cuda):
    """(fwd, bwd, fwd+bwd) median milliseconds, or None and why if this backend refuses the case."""
    try:
        o = fn(q, k, v, p)
        do = torch.randn_like(o)
        o.backward(do, retain_graph=True)  # first calls compile / autotune / pick kernels: not timed
    except RuntimeError as e:  # SDPA raises when no kernel of the chosen backend fits (dtype, dropout, GPU)
        return None, str(e).split("\n")[0].split(".")[0][:80]
    fwd = median_ms(lambda: fn(q, k, v, p), None, cuda)
    bwd = median_ms(lambda: o.backward(do, retain_graph=True), [q, k, v], cuda)
    both = median_ms(lambda: fn(q, k, v, p).backward(do), [q, k, v], cuda)
    return (fwd, bwd, both), None


def bench(args, cuda):
    """All rows: one dict per (heads, dtype, dropout, kernel)."""
    from kernels.flash_attention import flash_attention

    device = "cuda" if cuda else "cpu"
    impls = {"ours (Triton)": lambda q, k, v, p: flash_attention(q, k, v, causal=True, dropout_p=p)}
    impls.update(sdpa_impls(every_backend=not args.quick))
    B, T, D = args.batch, args.seq, args.dim
    rows = []
    for H in args.heads:
        for dtype in args.dtypes:
            g = torch.Generator(device=device).manual_seed(0)
            q, k, v = (torch.randn(B, H, T, D, device=device, dtype=dtype, generator=g).requires_grad_() for _ in range(3))
            # Sanity first: without dropout our output must match SDPA's before its speed means anything.
            with torch.no_grad():
                err = (flash_attention(q, k, v) - F.scaled_dot_product_attention(q, k, v, is_causal=True)).abs().max().item()
            if not err < 2e-2:
                sys.exit(f"kernels/bench.py: our output differs from SDPA's by {err:.3g} at {H} heads, {dtype}")
            fwd_flops = 4 * B * H * T * T * D * 0.5  # causal: half the matmul work
            for p in (0.0, args.dropout):
                for name, fn in impls.items():
                    ms, why = time_one(fn, q, k, v, p, cuda)
                    row = dict(heads=H, head_dim=D, batch=B, seq=T, dtype=str(dtype)[6:], dropout=p, kernel=name)
                    if ms is None:
                        row["refused"] = why
                    else:
                        for key, t, flops in zip(("fwd", "bwd", "fwd_bwd"), ms, (1.0, 2.5, 3.5)):
                            row[f"{key}_ms"] = round(t, 4)
                            row[f"{key}_tflops"] = round(flops * fwd_flops / (t * 1e-3) / 1e12, 2)
                    rows.append(row)
                    print(table_line(row), flush=True)
    return rows


def table_line(row):
    """One markdown row: TFLOP/s of forward, backward, forward+backward."""
    if "refused" in row:
        cells = f"n/a: {row['refused']} | | "
    else:
        cells = " | ".join(f"{row[k + '_tflops']:.1f}" for k in ("fwd", "bwd", "fwd_bwd"))
    return f"| {row['heads']}x{row['head_dim']} | {row['dtype']} | {row['dropout']:g} | {row['kernel']} | {cells} |"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="sequences per call (default 8)")
    parser.add_argument("--seq", type=int, default=2048, help="sequence length (phi-1: 2048)")
    parser.add_argument("--heads", default="32,16", help="comma-separated head counts (phi-1: 32, phi-1-small: 16)")
    parser.add_argument("--dim", type=int, default=64, help="head dimension (phi-1: 64)")
    parser.add_argument("--dropout", type=float, default=0.1, help="the dropout rate of the dropout rows (phi-1: 0.1)")
    parser.add_argument("--quick", action="store_true", help="phi-1's 32 heads, fp16 (train.py's default), ours vs "
                        "SDPA as the model calls it; meant to take about a minute on an H100 (not yet timed)")
    parser.add_argument("--dry-run", action="store_true", help="run on the CPU under the Triton interpreter at a "
                        "tiny shape: checks the script, its numbers mean nothing")
    parser.add_argument("--json", metavar="PATH", help="also write {device, versions, date, shape, rows} here")
    args = parser.parse_args(argv)
    args.heads = [32] if args.quick else [int(h) for h in args.heads.split(",")]
    args.dtypes = [torch.float16] if args.quick or args.dry_run else [torch.float16, torch.bfloat16]
    if args.dry_run:  # the interpreter runs every program of the grid in turn: keep it tiny
        args.batch, args.seq, args.heads = 1, 32, [1]
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.dry_run:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # read when the kernels are first imported, just below
    elif not torch.cuda.is_available():
        sys.exit("kernels/bench.py needs a CUDA GPU (or --dry-run, which checks the script on the CPU)")
    import triton

    from kernels.flash_attention import INTERPRET
    if args.dry_run and not INTERPRET:
        sys.exit("kernels/bench.py --dry-run: the kernels were imported before TRITON_INTERPRET=1; run it alone")

    cuda = not args.dry_run
    warnings.simplefilter("ignore", UserWarning)  # SDPA warns for every refused backend; the table says n/a
    device = torch.cuda.get_device_name() if cuda else f"CPU ({platform.processor() or platform.machine()}), dry run"
    versions = dict(torch=torch.__version__, triton=triton.__version__, cuda=torch.version.cuda,
                    python=platform.python_version())
    date = datetime.date.today().isoformat()
    print(f"## flash_attention vs SDPA on {device}\n")
    print(f"torch {versions['torch']}, triton {versions['triton']}, CUDA {versions['cuda']}, {date}; "
          f"batch {args.batch}, seq {args.seq}, head_dim {args.dim}, causal. "
          f"TFLOP/s (causal FLOPs halved), medians of {'triton.testing.do_bench' if cuda else 'a wall clock'}.\n")
    print("| heads | dtype | dropout | kernel | fwd | bwd | fwd+bwd |")
    print("|---|---|---|---|---|---|---|")
    rows = bench(args, cuda)
    if args.json:
        from prepare import atomic_write
        shape = dict(batch=args.batch, seq=args.seq, head_dim=args.dim, causal=True)
        with atomic_write(args.json) as f:
            json.dump(dict(device=device, versions=versions, date=date, quick=args.quick, dry_run=args.dry_run,
                           shape=shape, rows=rows), f, indent=1)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
