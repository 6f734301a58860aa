"""
bench/bench_prepare.py: how fast is prepare.py next to tiktoken alone, and does its memory stay flat?

    python bench/bench_prepare.py                      # stdlib corpus, workers = threads = all cores, 5 repeats
    python bench/bench_prepare.py --workers 2 --repeats 9 --scale 10

Speed: on the same texts (this Python's stdlib, exactly the documents prepare.py keeps), each
repeat runs, one after the other,
  - tiktoken's encode_ordinary_batch(texts, num_threads=W) with our CodeGen Encoding,
  - the same with plain r50k_base (GPT-2's), for reference,
  - `python prepare.py --workers W` end to end: start-up, reading files, tokenizing, writing bins.
Tokens/s counts the same tokens for all three (the documents' own, not the eot separators).
On a machine shared with other jobs wall times swing with the load, so the table also gives
CPU seconds (all threads or processes), which the load barely moves, and the median over
repeats of each repeat's own ratio (the three runs of a repeat see about the same load).
Memory: prepare.py on the corpus as one JSONL file, then on SCALE copies of it; the peak
resident set of its largest process (main or a worker) must not grow with the corpus.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import tiktoken

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repo root: `python bench/bench_prepare.py` from anywhere

from prepare import DEFAULT_SOURCE, get_tokenizer, iter_documents

# prepare.py runs under a fresh small interpreter that reports its children's resource use: a
# child forked straight from this large process would count our resident set as its own peak
# (ru_maxrss survives fork and exec).
LAUNCHER = """import resource, subprocess, sys, time
t = time.perf_counter()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(time.perf_counter() - t, u.ru_utime + u.ru_stime, u.ru_maxrss, r.returncode)"""


def run_prepare(args):
    """(wall s, CPU s, peak RSS MiB of the largest process) of `python prepare.py ARGS`."""
    out = subprocess.run([sys.executable, "-c", LAUNCHER, sys.executable, str(ROOT / "prepare.py"), *args],
                         capture_output=True, text=True, check=True).stdout.split()
    if out[3] != "0":
        raise SystemExit(f"prepare.py {' '.join(args)} failed with exit code {out[3]}")
    return float(out[0]), float(out[1]), int(out[2]) / 1024


def run_tiktoken(enc, texts, threads):
    """(wall s, CPU s) of one encode_ordinary_batch over all texts."""
    w, c = time.perf_counter(), time.process_time()
    enc.encode_ordinary_batch(texts, num_threads=threads)
    return time.perf_counter() - w, time.process_time() - c


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def memory_runs(texts, scale, workers, tmp):
    """{copies: (MB, tokens, wall s, peak RSS MiB)} for prepare.py on the corpus as one JSONL, 1x and SCALEx."""
    lines = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    result = {}
    for copies in (1, scale):
        path, out = os.path.join(tmp, f"corpus_x{copies}.jsonl"), os.path.join(tmp, f"x{copies}")
        with open(path, "w") as f:
            for _ in range(copies):
                f.write(lines)
        wall, _, peak = run_prepare(["--source", path, "--out", out, "--workers", str(workers)])
        with open(os.path.join(out, "meta.json")) as f:
            splits = json.load(f)["splits"]
        result[copies] = (os.path.getsize(path) / 1e6, splits["train"]["tokens"] + splits["val"]["tokens"], wall, peak)
        os.remove(path)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="prepare.py workers = tiktoken threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scale", type=int, default=10, help="the memory test's large corpus is this many copies")
    args = parser.parse_args()
    W = args.workers

    texts = [text for _, text in iter_documents(DEFAULT_SOURCE)]
    encoders = {"tiktoken, CodeGen Encoding": get_tokenizer(), "tiktoken, r50k_base": tiktoken.get_encoding("r50k_base")}
    n_tokens = sum(map(len, encoders["tiktoken, CodeGen Encoding"].encode_ordinary_batch(texts, num_threads=W)))
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(f"corpus: {len(texts)} files, {mb:.1f} MB, {n_tokens:,} tokens ({DEFAULT_SOURCE})", file=sys.stderr)

    runs = {name: [] for name in [*encoders, "prepare.py end to end"]}
    peaks = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name, enc in encoders.items():
                runs[name].append(run_tiktoken(enc, texts, W))
            wall, cpu, peak = run_prepare(["--out", os.path.join(tmp, "std"), "--workers", str(W)])
            runs["prepare.py end to end"].append((wall, cpu))
            peaks.append(peak)
            print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1][0]:.2f}s" for k, v in runs.items()), file=sys.stderr)
        with open(os.path.join(tmp, "std", "meta.json")) as f:
            splits = json.load(f)["splits"]
        assert splits["train"]["documents"] + splits["val"]["documents"] == len(texts), "not the same documents"
        startup = statistics.median(run_prepare(["--help"])[0] for _ in range(args.repeats))
        memory = memory_runs(texts, args.scale, W, tmp)

    anchor = runs["tiktoken, CodeGen Encoding"]
    print(f"\n{datetime.date.today()}; {cpu_name()}, {os.cpu_count()} cores shared with other jobs; "
          f"Python {platform.python_version()}, tiktoken {tiktoken.__version__}, numpy {np.__version__}; "
          f"{W} threads = {W} workers; medians of {args.repeats} repeats\n")
    print("| stdlib corpus | wall s | tokens/s | speed vs tiktoken (per-repeat ratio) | CPU s | tokens per CPU s |")
    print("|---|---|---|---|---|---|")
    for name, rs in runs.items():
        wall, cpu = statistics.median(w for w, _ in rs), statistics.median(c for _, c in rs)
        ratio = statistics.median(a[0] / w for a, (w, _) in zip(anchor, rs))
        print(f"| {name} | {wall:.2f} | {n_tokens / wall / 1e6:.2f} M | {ratio:.2f}x | {cpu:.2f} | "
              f"{n_tokens / cpu / 1e6:.2f} M |")
    print(f"\nprepare.py start-up (python, imports, `--help`): {startup:.2f} s of its wall time; "
          f"peak RSS on the stdlib run: {statistics.median(peaks):.0f} MiB\n")
    print("| prepare.py on | JSONL size | tokens | wall s | peak RSS, largest process |")
    print("|---|---|---|---|---|")
    for copies, (size, tokens, wall, peak) in memory.items():
        print(f"| stdlib x{copies} | {size:.0f} MB | {tokens:,} | {wall:.1f} | {peak:.0f} MiB |")


if __name__ == "__main__":
    main()
