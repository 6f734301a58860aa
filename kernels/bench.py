"""
kernels/bench.py: TFLOP/s of our Triton FlashAttention next to torch's scaled_dot_product_attention.

    python kernels/bench.py                          # phi-1 shapes: 32x64 and 16x64 heads, seq 2048, causal
    python kernels/bench.py --batch 4 --seq 4096 --dropout 0.1

For each shape, dtype (fp16, bf16) and dropout (0 and --dropout) it times forward, backward
and forward+backward of our kernel and of every SDPA backend this torch/GPU offers (flash,
cuDNN, memory-efficient), all in one run, as medians of triton.testing.do_bench. It prints a
markdown table with the GPU, versions and date, ready for kernels/README.md.

FLOPs, per (batch, head): the forward is two T x T x D matmuls (Q K^T, then P V), 4 T^2 D;
causal attention needs only half of them. The backward is five such matmuls (S and dP again,
dV, dQ, dK): 2.5x the forward. These are the counts FlashAttention's papers use.
"""

import argparse
import datetime
import pathlib
import sys
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # `python kernels/bench.py` from anywhere


def sdpa_backends():
    """name -> function(q, k, v, p) for SDPA restricted to one backend each."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def only(backend):
        def run(q, k, v, p):
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return run
    return {"sdpa flash": only(SDPBackend.FLASH_ATTENTION), "sdpa cuDNN": only(SDPBackend.CUDNN_ATTENTION),
            "sdpa efficient": only(SDPBackend.EFFICIENT_ATTENTION)}


def time_one(fn, q, k, v, p):
    """Median milliseconds of forward, backward, forward+backward; None if this backend refuses the case."""
    from triton.testing import do_bench
    try:
        o = fn(q, k, v, p)
        do = torch.randn_like(o)
        o.backward(do, retain_graph=True)  # first calls autotune / pick kernels: keep them out of the timing
    except RuntimeError as e:  # SDPA raises when no kernel of the chosen backend fits (dtype, dropout, GPU)
        return None, str(e).split(".")[0][:60]
    fwd = do_bench(lambda: fn(q, k, v, p), return_mode="median")
    bwd = do_bench(lambda: o.backward(do, retain_graph=True), grad_to_none=[q, k, v], return_mode="median")
    both = do_bench(lambda: fn(q, k, v, p).backward(do), grad_to_none=[q, k, v], return_mode="median")
    return (fwd, bwd, both), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="sequences per call (default 8)")
    parser.add_argument("--seq", type=int, default=2048, help="sequence length (phi-1: 2048)")
    parser.add_argument("--heads", default="32,16", help="comma-separated head counts (phi-1: 32, phi-1-small: 16)")
    parser.add_argument("--dim", type=int, default=64, help="head dimension (phi-1: 64)")
    parser.add_argument("--dropout", type=float, default=0.1, help="the dropout rate of the dropout rows (phi-1: 0.1)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("kernels/bench.py needs a CUDA GPU; on CPU run the tests instead: python -m pytest -q tests/test_kernels.py")

    import triton
    from kernels.flash_attention import flash_attention

    warnings.simplefilter("ignore", UserWarning)  # SDPA warns for every refused backend; the table says n/a
    impls = {"ours (Triton)": lambda q, k, v, p: flash_attention(q, k, v, causal=True, dropout_p=p)}
    impls.update(sdpa_backends())
    B, T, D = args.batch, args.seq, args.dim
    print(f"## flash_attention vs SDPA on {torch.cuda.get_device_name()}\n")
    print(f"torch {torch.__version__}, triton {triton.__version__}, CUDA {torch.version.cuda}, "
          f"{datetime.date.today()}; batch {B}, seq {T}, head_dim {D}, causal. "
          f"TFLOP/s (causal FLOPs halved), medians of triton.testing.do_bench.\n")
    print("| heads | dtype | dropout | kernel | fwd | bwd | fwd+bwd |")
    print("|---|---|---|---|---|---|---|")
    for H in map(int, args.heads.split(",")):
        for dtype in (torch.float16, torch.bfloat16):
            g = torch.Generator(device="cuda").manual_seed(0)
            q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=dtype, generator=g).requires_grad_() for _ in range(3))
            # Sanity first: without dropout our output must match SDPA's before its speed means anything.
            with torch.no_grad():
                err = (flash_attention(q, k, v) - F.scaled_dot_product_attention(q, k, v, is_causal=True)).abs().max().item()
            assert err < 2e-2, f"output differs from SDPA by {err:.3g} at heads={H}, {dtype}"
            fwd_flops = 4 * B * H * T * T * D * 0.5  # causal: half the matmul work
            for p in (0.0, args.dropout):
                for name, fn in impls.items():
                    ms, why = time_one(fn, q, k, v, p)
                    if ms is None:
                        cells = f"n/a ({why}) | | "
                    else:
                        tflops = [f * fwd_flops / (t * 1e-3) / 1e12 for f, t in zip((1.0, 2.5, 3.5), ms)]
                        cells = " | ".join(f"{x:.0f}" for x in tflops)
                    print(f"| {H}x{D} | {str(dtype)[6:]} | {p:g} | {name} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
