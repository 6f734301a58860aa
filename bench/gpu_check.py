"""
bench/gpu_check.py: what this repo says about a GPU, measured on one GPU with one command, in at most 8 minutes.

    python bench/gpu_check.py              # one H100/H200: bench/results/gpu_check.json and gpu_check.md
    python bench/gpu_check.py --dry-run    # a CPU, toy sizes: proves the script itself works (CI runs it)

The steps, most important first. Each runs in processes of its own under a time limit, and all of them
together within --budget seconds; a step that fails or runs out of time is recorded with its error, and
the next one runs. The JSON and the markdown are rewritten after every step, so what finished survives.
  kernel_tests   python -m pytest -q tests/test_kernels.py on the GPU (TRITON_INTERPRET unset)
  resume         train.py on the tiny model, fp16, dropout 0.1, compiled, through our kernel: 30 steps
                 straight, then the same run stopped by SIGTERM after step 12 and resumed to 30. Equal logs?
                 If not, how far apart (docs/training.md, "exact resume on a GPU", says what to expect)
  train_bench    bench/bench_train.py: phi-1 and phi-1-small, fp16, compile on, Triton vs SDPA, micro-batch 8
                 x 2048 tokens: tokens/s, MFU, compile time, peak memory (compare with bench/memory.py)
  kernel_bench   python kernels/bench.py --json FILE --quick: our kernel against SDPA, dropout 0 and 0.1
  generation     bench/bench_evaluate.py --part gen: model.generate against transformers, phi-1-small, bf16

The tokenizer's ranks and the HumanEval prompts (generation) come from ../shared or ./shared, as in the tests.
"""

import argparse
import datetime
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repo root: `python bench/gpu_check.py` from anywhere

from prepare import atomic_write

PY = sys.executable
LIMITS = {"kernel_tests": 150, "resume": 150, "train_bench": 360, "kernel_bench": 90, "generation": 90}  # seconds


def run(cmd, timeout, env=None):
    """(exit status or None on timeout, stdout + stderr) of cmd, run from the repo root in a session of its
    own, so that a timeout kills everything it started."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=max(timeout, 1))
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return None, proc.communicate()[0]


def tail(out, n=5):
    return "\n".join(out.strip().splitlines()[-n:])


# -----------------------------------------------------------------------------
# The steps: each takes (args, seconds it may use, scratch dir) and returns a dict for the JSON.

def kernel_tests(args, timeout, tmp):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # the real kernels, on the GPU
    cmd = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_kernels.py"]
    status, out = run(cmd + (["--collect-only"] if args.dry_run else []), timeout, env)
    summary = re.findall(r"\d+ (?:passed|failed|skipped|errors?|tests? collected)", out)
    return {"ok": status == 0, "summary": ", ".join(summary) or tail(out, 1), "log_tail": tail(out, 15 if status else 3)}


def make_bins(path, tokens, seed=0):
    """Random-token train.bin and val.bin with the meta.json train.py checks: enough for throughput and resume."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (("train", tokens), ("val", tokens // 10)):
        rng.integers(0, 50257, n, dtype=np.uint16).tofile(path / f"{split}.bin")
    meta = {"tokenizer": "codegen", "vocab_size": 50295, "splits": {"train": {"tokens": tokens}, "val": {"tokens": tokens // 10}}}
    (path / "meta.json").write_text(json.dumps(meta))


def resume(args, timeout, tmp):
    """Run A straight; run B stopped by SIGTERM past its first checkpoint, then resumed: compare the logs."""
    deadline = time.time() + timeout
    steps, stop_after, save = (6, 3, 2) if args.dry_run else (30, 12, 10)
    data = tmp / "resume-data"
    make_bins(data, 200_000)
    settings = ["--model=tiny", f"--data_dir={data}", "--dropout=0.1", "--warmup_iters=2", f"--lr_decay_iters={steps}",
                f"--save_interval={save}", f"--eval_interval={save}", "--eval_iters=2", "--keep_every=0", "--log_interval=1"]
    settings += (["--device=cpu", "--dtype=float32", "--compile=False", "--block_size=32", "--batch_size=4", "--micro_batch_size=2"]
                 if args.dry_run else
                 ["--device=cuda", "--dtype=float16", "--compile=True", "--block_size=512", "--batch_size=32", "--micro_batch_size=8"])
    cmd = [PY, "train.py", *settings, f"--max_iters={steps}"]
    status, out = run(cmd + [f"--out_dir={tmp / 'a'}"], deadline - time.time())
    if status != 0:
        return {"ok": False, "error": "run A failed" if status is not None else "run A timed out", "log_tail": tail(out, 15)}
    b = tmp / "b"
    proc = subprocess.Popen(cmd + [f"--out_dir={b}"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    while proc.poll() is None and stop_after not in logged_steps(b) and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)  # as a scheduler preempting the job would
    try:
        sigterm_status = proc.wait(timeout=max(deadline - time.time(), 1))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return {"ok": False, "error": "run B did not stop on SIGTERM in time"}
    stopped_at = max(logged_steps(b), default=0)
    status, out = run(cmd + [f"--out_dir={b}", "--init_from=resume"], deadline - time.time())
    if status != 0:
        return {"ok": False, "error": "the resumed run failed", "sigterm_exit_status": sigterm_status, "log_tail": tail(out, 15)}
    a_log, b_log = read_log(tmp / "a"), read_log(b)
    pairs = [(x, y) for x, y in zip(a_log, b_log) if x["iter"] > stopped_at]
    same = [{k: r.get(k) for k in ("iter", "loss", "grad_norm", "val_loss")} for r in a_log] == \
           [{k: r.get(k) for k in ("iter", "loss", "grad_norm", "val_loss")} for r in b_log]
    loss_diffs = [abs(x["loss"] - y["loss"]) for x, y in pairs if x.get("loss") is not None and y.get("loss") is not None]
    return {"ok": sigterm_status == 143 and stop_after <= stopped_at < steps and len(a_log) == len(b_log),
            "steps": steps, "sigterm_after_step": stop_after, "stopped_and_saved_at": stopped_at,
            "sigterm_exit_status": sigterm_status, "logs_identical": same,
            "max_abs_loss_diff_after_resume": max(loss_diffs, default=None), "steps_compared": len(pairs)}


def logged_steps(out_dir):
    return {r["iter"] for r in read_log(out_dir) if "loss" in r}


def read_log(out_dir):
    path = out_dir / "log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train_bench(args, timeout, tmp):
    out = tmp / "bench_train.json"
    cmd = [PY, "bench/bench_train.py", "--json", str(out)]
    cmd += (["--device", "cpu", "--models", "tiny", "--dtypes", "float32", "--attention", "sdpa", "--seq", "32",
             "--micro-batch", "2", "--accum", "1", "--warmup", "1", "--steps", "1", "--no-compile"] if args.dry_run else
            ["--models", "phi-1", "phi-1-small", "--dtypes", "float16", "--attention", "triton", "sdpa",
             "--micro-batch", "8", "--accum", "1", "--warmup", "3", "--steps", "5", "--row-timeout", "150"])
    status, log = run(cmd, timeout)
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    return {"ok": status == 0 and rows and not any("error" in r for r in rows), "rows": rows,
            "table": [line for line in log.splitlines() if line.startswith("|")], "log_tail": tail(log, 3)}


def kernel_bench(args, timeout, tmp):
    out = tmp / "kernel_bench.json"
    if args.dry_run:  # its own --dry-run where it has one (interpreted, tiny); else check it takes the real run's flags
        status, log = run([PY, "kernels/bench.py", "--help"], timeout)
        if "--dry-run" not in log:
            flags = all(f in log for f in ("--json", "--quick"))
            return {"ok": status == 0, "dry_run": "kernels/bench.py --help " + ("lists --json and --quick" if flags else
                                                                             "lacks --json/--quick: the real run will fail here")}
    status, log = run([PY, "kernels/bench.py", "--json", str(out), "--dry-run" if args.dry_run else "--quick"], timeout)
    return {"ok": status == 0, "results": json.loads(out.read_text()) if out.exists() else None,
            "table": [line for line in log.splitlines() if line.startswith("|")], "log_tail": tail(log, 3)}


def generation(args, timeout, tmp):
    cmd = [PY, "bench/bench_evaluate.py", "--part", "gen", "--data-dir", str(args.data_dir)]
    cmd += (["--device", "cpu", "--sizes", "tiny", "--batch-sizes", "1", "--rounds", "1", "--new-tokens", "4"] if args.dry_run else
            ["--device", "cuda", "--dtype", "bfloat16", "--sizes", "phi-1-small", "--batch-sizes", "1", "8",
             "--rounds", "3", "--new-tokens", "64"])
    status, log = run(cmd, timeout)
    table = [line for line in log.splitlines() if line.startswith("|")]
    return {"ok": status == 0 and len(table) > 2, "table": table, "log_tail": tail(log, 3)}


STEPS = {"kernel_tests": kernel_tests, "resume": resume, "train_bench": train_bench, "kernel_bench": kernel_bench,
         "generation": generation}


# -----------------------------------------------------------------------------

def environment(dry_run):
    import torch
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"date": str(datetime.date.today()), "gpu": gpu, "torch": torch.__version__, "triton": triton_version,
            "cuda": torch.version.cuda, "dry_run": dry_run}


def markdown(report):
    e = report["environment"]
    lines = [f"# gpu_check{' (dry run, CPU)' if e['dry_run'] else ''}: {e['gpu'] or 'no GPU'}", "",
             f"{e['date']}; torch {e['torch']}, triton {e['triton']}, CUDA {e['cuda']}; "
             f"{report['seconds']:.0f} s of a {report['budget_s']} s budget.", "",
             "| step | result | seconds |", "|---|---|---:|"]
    for name, r in report["steps"].items():
        what = "ok" if r.get("ok") else f"**failed**: {r.get('error') or r.get('summary') or ''}".strip()
        if name == "kernel_tests" or r.get("dry_run"):
            what += f" ({r.get('summary') or r.get('dry_run')})"
        if name == "resume" and "logs_identical" in r:
            what += (f"; stopped at step {r['stopped_and_saved_at']}, logs identical: {r['logs_identical']}, "
                     f"max loss difference after the resume {r['max_abs_loss_diff_after_resume']}")
        lines.append(f"| {name} | {what} | {r.get('seconds', 0):.0f} |")
    for name in ("train_bench", "kernel_bench", "generation"):
        table = report["steps"].get(name, {}).get("table")
        if table:
            lines += ["", f"## {name}", "", *table]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--dry-run", action="store_true", help="CPU, toy sizes: check the script, measure nothing")
    parser.add_argument("--out", help="directory for gpu_check.json and .md (default: bench/results; a dry run: a temp dir)")
    parser.add_argument("--budget", type=int, default=480, help="seconds for all steps together (default: %(default)s)")
    parser.add_argument("--steps", nargs="+", choices=list(STEPS), default=list(STEPS), help="run only these")
    parser.add_argument("--data-dir", type=pathlib.Path, help="HumanEval's files (default: ../shared/data or ./shared/data)")
    args = parser.parse_args()
    import torch
    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("gpu_check.py: torch sees no GPU; on a CPU, `--dry-run` checks the script itself")
    for shared in (ROOT / "shared", ROOT.parent / "shared"):  # the tokenizer's ranks and the benchmarks, offline
        if shared.is_dir():
            os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(shared / "tiktoken"))
            args.data_dir = args.data_dir or shared / "data"
    args.data_dir = args.data_dir or ROOT.parent / "shared" / "data"
    out = pathlib.Path(args.out or (tempfile.mkdtemp(prefix="gpu_check-") if args.dry_run else ROOT / "bench" / "results"))
    out.mkdir(parents=True, exist_ok=True)
    report = {"environment": environment(args.dry_run), "budget_s": args.budget, "steps": {}, "seconds": 0.0}
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.steps:
            left = args.budget - (time.time() - start)
            t0 = time.time()
            if left < 10:
                result = {"ok": False, "error": "skipped: the time budget was spent"}
            else:
                print(f"gpu_check: {name} (up to {min(LIMITS[name], left):.0f} s)", flush=True)
                try:
                    result = STEPS[name](args, min(LIMITS[name], left), pathlib.Path(tmp))
                except Exception as e:  # one broken step must not lose the others' results
                    result = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            report["steps"][name] = {**result, "seconds": time.time() - t0}
            report["seconds"] = time.time() - start
            with atomic_write(out / "gpu_check.json") as f:
                json.dump(report, f, indent=1)
            with atomic_write(out / "gpu_check.md") as f:
                f.write(markdown(report))
            print(f"gpu_check: {name}: {'ok' if result.get('ok') else 'FAILED'} ({report['steps'][name]['seconds']:.0f} s)",
                  flush=True)
    print(f"gpu_check: wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
    sys.exit(0 if all(r.get("ok") for r in report["steps"].values()) else 1)


if __name__ == "__main__":
    main()
