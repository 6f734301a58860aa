"""
bench/bench_forest.py: forest.py's NumPy RandomForest side by side with scikit-learn's RandomForestClassifier.

    python bench/bench_forest.py                       # the table for docs/filter.md (~10 minutes on 2 cores)
    python bench/bench_forest.py --repeats 1 --quick   # a smoke run
    python bench/bench_forest.py --json bench_forest.json

Same settings on both sides: 100 trees, max_features="sqrt", bootstrap, unlimited depth, one thread
(n_jobs=1). Problems: the paper's shape (20k documents x 256-dim embeddings, 2 and 6 classes, from
make_classification with 5% label noise; 16k to fit, 4k held out) and three small real datasets that
ship with scikit-learn (75/25 stratified split). Each repeat uses a new split seed and forest seed and
runs both forests back to back, so machine load hits both alike; the table shows medians, with wall
time and CPU time of this process (the second is steadier on a shared machine).
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys
import time

import numpy as np
import sklearn
from sklearn.datasets import load_breast_cancer, load_digits, load_wine, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the repo root: `python bench/bench_forest.py` from anywhere

from forest import RandomForest


def problems(quick):
    n = 4000 if quick else 20000
    for k in (2, 6):
        X, y = make_classification(n_samples=n, n_features=256, n_informative=32, n_redundant=32, n_classes=k,
                                   n_clusters_per_class=2, flip_y=0.05, random_state=k)
        yield f"{n // 1000}k x 256, {k} classes", X.astype(np.float32), y, 0.2
    for name, load in (("breast_cancer", load_breast_cancer), ("digits", load_digits), ("wine", load_wine)):
        X, y = load(return_X_y=True)
        yield f"{name} {X.shape[0]} x {X.shape[1]}, {len(set(y))} classes", X.astype(np.float32), y, 0.25


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run_one(make, Xtr, Xte, ytr, yte):
    forest, fit_wall, fit_cpu = timed(lambda: make().fit(Xtr, ytr))
    pred, pred_wall, pred_cpu = timed(lambda: forest.predict(Xte))
    return {"accuracy": float((pred == yte).mean()), "fit_s": fit_wall, "fit_cpu_s": fit_cpu,
            "predict_s": pred_wall, "predict_cpu_s": pred_cpu}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="4k instead of 20k documents")
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()
    makers = {"forest.RandomForest": lambda seed: RandomForest(args.trees, max_features="sqrt", seed=seed),
              "sklearn": lambda seed: RandomForestClassifier(args.trees, max_features="sqrt", n_jobs=1, random_state=seed)}
    results = []
    for name, X, y, test in problems(args.quick):
        runs = {k: [] for k in makers}
        for r in range(args.repeats):
            Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test, random_state=r, stratify=y)
            for k, make in makers.items():
                runs[k].append(run_one(lambda: make(r), Xtr, Xte, ytr, yte))
                print(name, k, {m: round(v, 4) for m, v in runs[k][-1].items()}, flush=True)
        for k, rs in runs.items():
            results.append({"problem": name, "forest": k, "n_test": len(yte),
                            **{m: float(np.median([x[m] for x in rs])) for m in rs[0]}})
    header = (f"{datetime.date.today()}, {cpu_name()} ({os.cpu_count()} cores, shared), "
              f"Python {platform.python_version()}, NumPy {np.__version__}, scikit-learn {sklearn.__version__}; "
              f"{args.trees} trees, medians of {args.repeats} runs")
    lines = [header, "", "| problem | forest | held-out accuracy | fit s (CPU s) | predict s (CPU s) |",
             "|---|---|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['problem']} | {r['forest']} | {100 * r['accuracy']:.2f}% | {r['fit_s']:.2f} ({r['fit_cpu_s']:.2f}) "
                     f"| {r['predict_s']:.3f} ({r['predict_cpu_s']:.3f}) |")
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
