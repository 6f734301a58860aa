"""
kernels/compile_check.py: compile every kernel config for a GPU, without a GPU, and show its cost.

    python kernels/compile_check.py                    # sm_90 (H100), fp16, head_dim 64, causal: every config
    python kernels/compile_check.py --arch 80 --dtype bfloat16 --dim 128
    python kernels/compile_check.py --first            # one config per kernel (what the tests run, ~30 s)

Triton's interpreter, which runs the tests on a CPU, accepts code that Triton's compiler rejects
(a global read inside a kernel, for one), and says nothing of registers. Triton compiles for a
chosen GPUTarget without any GPU present, with the ptxas it ships; so this script compiles the
forward, dQ and dK/dV kernels, with and without dropout, for each autotune config, and prints
per config: registers per thread, bytes spilled to local memory (ptxas -v) and the number of
SASS instructions (cuobjdump): a static count, the size of the unrolled tile loops, not a time.
It exits non-zero if a kernel fails to compile. TRITON_INTERPRET must be unset.
"""

import argparse
import importlib
import os
import pathlib
import re
import subprocess
import sys
import tempfile

if os.environ.get("TRITON_INTERPRET") == "1":
    sys.exit("kernels/compile_check.py compiles for a GPU: run it without TRITON_INTERPRET=1")

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.backends.nvidia.compiler import get_ptxas  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402
from triton.knobs import nvidia as nvidia_tools  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # `python kernels/compile_check.py` from anywhere
fa = importlib.import_module("kernels.flash_attention")  # the module: the package re-exports the function by its name
KERNELS = {"forward": (fa._fwd_kernel, fa.FWD_CONFIGS), "dQ": (fa._dq_kernel, fa.DQ_CONFIGS),
           "dK/dV": (fa._dkdv_kernel, fa.DKDV_CONFIGS)}
TYPES = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}


def signature(jit, dtype, dropout):
    """Triton's type for each runtime argument, as a launch with contiguous torch tensors would infer
    it, and the 16-byte alignment a launch would find for pointers (and for T = 2048)."""
    types, attrs = {}, {}
    for i, name in enumerate(jit.arg_names):
        if name in ("T", "T_BUCKET", "threshold"):
            types[name] = "i32"
        elif name in ("LSE", "DELTA"):
            types[name] = "*fp32"
        elif name == "SEED":
            types[name] = "*i64" if dropout else "constexpr"
        elif name in ("Q", "K", "V", "O", "DO", "DQ", "DK", "DV"):
            types[name] = f"*{TYPES[dtype]}"
        elif name in ("qk_scale", "sm_scale"):
            types[name] = "fp32"
        else:
            continue  # a constexpr: given below
        if types[name].startswith("*") or name == "T":
            attrs[(i,)] = [["tt.divisibility", 16]]
    return types, attrs


def compile_one(kernel, config, arch, dtype, head_dim, causal, dropout):
    """(registers, spilled bytes, SASS instructions) of one kernel config compiled for sm_<arch>."""
    jit = kernel.fn
    types, attrs = signature(jit, dtype, dropout)
    constants = dict(HEAD_DIM=head_dim, CAUSAL=causal, DROPOUT=dropout, **config.kwargs)
    if not dropout:
        constants["SEED"] = None
    types.update({name: "constexpr" for name in constants})
    compiled = triton.compile(ASTSource(jit, types, constants, attrs), target=GPUTarget("cuda", arch, 32),
                              options=dict(num_warps=config.num_warps, num_stages=config.num_stages))
    with tempfile.TemporaryDirectory() as tmp:
        ptx, cubin = pathlib.Path(tmp, "k.ptx"), pathlib.Path(tmp, "k.cubin")
        ptx.write_text(compiled.asm["ptx"])
        cubin.write_bytes(compiled.asm["cubin"])
        gpu = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"  # Triton targets sm_90a for Hopper's wgmma
        log = subprocess.run([get_ptxas(arch).path, "-v", f"--gpu-name={gpu}", str(ptx), "-o", os.devnull],
                             capture_output=True, text=True, check=True).stderr
        sass = subprocess.run([nvidia_tools.cuobjdump.path, "-sass", str(cubin)],
                              capture_output=True, text=True, check=True).stdout
    registers = int(re.search(r"Used (\d+) registers", log).group(1))
    spilled = int(re.search(r"(\d+) bytes spill stores", log).group(1))
    instructions = len(re.findall(r"^\s+/\*[0-9a-f]{4,}\*/", sass, re.M))  # one address comment per instruction
    return registers, spilled, instructions


def reason(error):
    """The line that says why: Triton wraps the real error once per calling jit function, each
    message a source excerpt with a caret under the culprit; the innermost names the problem."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = [line.strip() for line in str(error).splitlines() if line.strip().strip("^")]
    return f"{type(error).__name__}: {lines[-1][:160] if lines else ''}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", type=int, default=90, help="compute capability x10: 90 H100/H200, 80 A100")
    parser.add_argument("--dtype", default="float16", choices=sorted(TYPES))
    parser.add_argument("--dim", type=int, default=64, help="head_dim (phi-1: 64)")
    parser.add_argument("--non-causal", action="store_true")
    parser.add_argument("--first", action="store_true", help="only the first config of each kernel, with dropout")
    args = parser.parse_args(argv)
    print(f"sm_{args.arch}, {args.dtype}, head_dim {args.dim}, {'non-' if args.non_causal else ''}causal, "
          f"triton {triton.__version__}\n")
    print("| kernel | dropout | BLOCK_M x BLOCK_N | warps | stages | registers | spilled bytes | SASS instructions |")
    print("|---|---|---|---|---|---|---|---|")
    failed = 0
    for name, (kernel, configs) in KERNELS.items():
        for dropout in (True,) if args.first else (False, True):
            for config in configs[:1] if args.first else configs:
                shape = f"{config.kwargs['BLOCK_M']} x {config.kwargs['BLOCK_N']}"
                try:
                    cells = compile_one(kernel, config, args.arch, args.dtype, args.dim, not args.non_causal, dropout)
                except Exception as e:  # report every config, then fail
                    failed += 1
                    cells = (f"compile error: {reason(e)}", "", "")
                print(f"| {name} | {dropout} | {shape} | {config.num_warps} | {config.num_stages} | "
                      + " | ".join(map(str, cells)) + " |", flush=True)
    if failed:
        sys.exit(f"kernels/compile_check.py: {failed} config(s) failed to compile for sm_{args.arch}")


if __name__ == "__main__":
    main()
