"""bench/gpu_check.py --dry-run: every step of the one-command GPU check runs, on the CPU at toy sizes."""
import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_dry_run_runs_every_step(tmp_path):
    proc = subprocess.run([sys.executable, "bench/gpu_check.py", "--dry-run", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    steps = report["steps"]
    assert list(steps) == ["kernel_tests", "resume", "train_bench", "kernel_bench", "generation"]
    assert all(r["ok"] for r in steps.values()), {k: r for k, r in steps.items() if not r["ok"]}
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "tests collected" in steps["kernel_tests"]["summary"]
    resume = steps["resume"]  # stopped by SIGTERM past its checkpoint, resumed: the same log as a straight run
    assert resume["sigterm_exit_status"] == 143 and resume["logs_identical"] and resume["steps_compared"] > 0
    [row] = steps["train_bench"]["rows"]
    assert row["model"] == "tiny" and row["tokens_per_sec"] > 0
    assert len(steps["generation"]["table"]) == 3  # header, rule, one row
    markdown = (tmp_path / "gpu_check.md").read_text()
    assert "| resume | ok; stopped at step" in markdown and "## train_bench" in markdown


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without a GPU gets")
def test_without_a_gpu_the_real_run_says_so():
    for script, message in (("bench/gpu_check.py", "gpu_check.py: torch sees no GPU"),
                            ("bench/bench_train.py", "bench_train.py: no CUDA GPU here")):
        proc = subprocess.run([sys.executable, script], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 1 and proc.stderr.strip().startswith(message)
