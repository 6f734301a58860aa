"""run.sh end to end at cpu scale, smoke size, against a loopback teacher; and report.py on partial runs.

    python -m pytest -q tests/test_run.py
"""
import json
import os
import pathlib
import random
import re
import subprocess
import sysconfig
import time

import pytest
import torch

from fake_llm import fake_llm
import report

ROOT = pathlib.Path(__file__).resolve().parents[1]
ARMS = ["raw", "filtered", "base", "phi1"]
SECTIONS = ["## The experiment: the same student on different data", "## Data funnel", "## Forest (held-out)", "## Training curves", "## HumanEval and MBPP",
            "## Decontamination", "## Time per step and hardware"]
ARTIFACTS = ["raw/meta.json", "annotations.jsonl", "filter/metrics.json", "filter/kept.jsonl",
             "textbooks.jsonl", "exercises.jsonl", "textbooks.clean.jsonl", "exercises.clean.jsonl",
             "textbooks.contamination.json", "exercises.contamination.json",
             "raw/train.bin", "filtered/train.bin", "codetextbook/train.bin", "codetextbook/val.bin",
             "codetextbook/meta.json", "codeexercises/train.bin", "codeexercises/val.bin", "codeexercises/meta.json",
             *[f"arms/{arm}/{f}" for arm in ARMS for f in ("ckpt.pt", "log.jsonl", "loss.svg", "chosen.json")],
             *[f"eval/{arm}-{task}.json" for arm in ARMS for task in ("humaneval", "mbpp")],
             "report.md", "ablation.svg"]


def teacher(messages, n):
    """A loopback teacher that answers like a good one: a label for an annotation prompt (filter.py asks for
    the paper's "educational value"), an exercise for a prompt that shows the doctest shape (>>>), else a
    textbook section. Answers are drawn from the prompt, so they differ from row to row (synth.py drops near
    duplicates) yet are the same on a rerun."""
    prompt = messages[-1]["content"]
    rng = random.Random(prompt)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(150)]
    if "educational value" in prompt.lower():
        return rng.choice(["Educational value: high", "Educational value: low"])
    if ">>>" in prompt:
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        name = re.search(r"def (\w+)\(", prompt).group(1)  # synth.py asks for a drawn name
        return (f"```python\ndef {name}(x: int) -> int:\n    \"\"\"Add {a} to x; {' '.join(words[2:30])}.\n"
                f"    >>> {name}({b})\n    {a + b}\n    \"\"\"\n    return x + {a}\n```")
    return (" ".join(words[:100]) + ".\n\n```python\ndef " + words[100] + "(items):\n"
            "    return [item * 2 for item in items]\n```\n\n" + " ".join(words[101:140]) + ".")


def run_sh(run_dir, api_base, *args, **env):
    # One torch thread: this checks the plumbing, not the speed, and on a machine busy with other tests
    # two threads per process wait on each other many times longer than they save.
    env = {**os.environ, "SMOKE": "1", "ARMS": " ".join(ARMS), "RUN_DIR": str(run_dir), "API_BASE": api_base, "MODEL": "fake",
           "CODE_SOURCES": os.path.join(sysconfig.get_paths()["stdlib"], "email"), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(["bash", "run.sh", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def explain(p):
    return f"exit {p.returncode}\n--- stdout\n{p.stdout[-4000:]}\n--- stderr\n{p.stderr[-4000:]}"


@pytest.mark.slow
def test_cpu_pipeline_end_to_end_then_skips_and_redoes(tmp_path):
    run = tmp_path / "run"
    with fake_llm(teacher) as (api_base, server):
        p = run_sh(run, api_base, "cpu")
        assert p.returncode == 0, explain(p)
        for rel in ARTIFACTS:
            assert (run / rel).is_file(), f"{rel} missing\n{explain(p)}"
        text = (run / "report.md").read_text()
        for section in SECTIONS:
            assert section in text, section
        assert "missing" not in text, text  # every artifact the report reads was there
        # The report opens with the experiment: a row per arm with its paired differences, the chart, a verdict
        # on every comparison.
        experiment = text.split("## The experiment")[1].split("\n## ")[0]
        for arm in ARMS:
            assert re.search(rf"^\| \*\*{arm}\*\* \|", experiment, re.M), arm
        assert "![the arms side by side](ablation.svg)" in experiment
        assert experiment.count("(filtered vs raw)") == experiment.count("(phi1 vs base)") == 2
        assert "each arm is one run with one seed" in experiment and "second seed moved raw" in experiment
        assert "<rect" in (run / "ablation.svg").read_text()
        evaluated = json.loads((run / "eval" / "phi1-humaneval.json").read_text())
        assert len(evaluated["solution_loss_per_task"]) == 3 and "pass@1" in evaluated
        chosen = json.loads((run / "arms" / "phi1" / "chosen.json").read_text())
        assert len(chosen["candidates"]) == 3 and "lowest validation loss" in chosen["why"]
        assert chosen["val_loss"] == min(c["val_loss"] for c in chosen["candidates"])
        for step in report.STEPS:  # each step printed what it produced, and marked itself done
            assert re.search(rf"^== {step}: .*; \d+", p.stdout, re.M), step
            assert json.loads((run / ".done" / f"{step}.json").read_text())["seconds"] >= 0
        for kind in ("textbooks", "exercises"):  # the loopback teacher's answers are all valid
            assert json.loads((run / f"{kind}.jsonl.report.json").read_text())["this_run"]["yield"] == 1.0
        assert len(server.requests) > 0  # the teacher was asked, and nothing was started in its place
        assert not (run / "teacher.log").exists()

        # A rerun finds every step done: it skips them all, asks the teacher nothing and rewrites the report.
        asked = len(server.requests)
        p = run_sh(run, api_base, "cpu")
        assert p.returncode == 0, explain(p)
        assert p.stdout.count("done before, skipped") == len(report.STEPS), p.stdout
        assert len(server.requests) == asked

        # Deleting a marker redoes just that step; training resumes from its checkpoint, here the last one.
        (run / ".done" / "train-phi1.json").unlink()
        p = run_sh(run, api_base, "cpu")
        assert p.returncode == 0, explain(p)
        assert p.stdout.count("done before, skipped") == len(report.STEPS) - 1, p.stdout
        assert "--init_from=resume" in p.stdout
        assert (run / ".done" / "train-phi1.json").is_file()


@pytest.mark.slow
def test_synthesis_time_budget(tmp_path):
    """SYNTH_MINUTES bounds a synthetic set: a slow teacher's rows so far are kept and the run goes on; a
    teacher with no valid exercise at all stops the run with a message, and marks nothing it did not finish."""
    def slow(messages, n):
        if ">>>" in messages[-1]["content"]:
            time.sleep(1.0)
        return teacher(messages, n)

    def hopeless(messages, n):  # slow enough that the budget, not synth.py's own give-up, stops it
        if ">>>" in messages[-1]["content"]:
            time.sleep(0.3)
            return "I cannot write that."
        return teacher(messages, n)

    for respond, expect_rc in ((slow, 0), (hopeless, 1)):
        run = tmp_path / respond.__name__
        with fake_llm(respond) as (api_base, _):
            p = run_sh(run, api_base, "cpu", SYNTH_MINUTES="0.1", STOP_AFTER="exercises")
        assert p.returncode == expect_rc, explain(p)
        if expect_rc == 0:
            assert "budget ran out with" in p.stdout, explain(p)
            made = json.loads((run / ".done" / "exercises.json").read_text())["produced"]["documents"]
            assert 0 < made < 30
        else:
            assert "no valid exercises in 0.1 minutes" in p.stderr, explain(p)
            assert not (run / ".done" / "exercises.json").exists()
            assert (run / ".done" / "textbooks.json").exists()


def test_a_failed_step_leaves_no_marker(tmp_path):
    """A teacher that is down: run.sh stops with a message at the first step that needs it, marks nothing
    after the raw corpus, and says which endpoint it tried."""
    run = tmp_path / "run"
    p = run_sh(run, "http://127.0.0.1:9/v1", "cpu", CODE_SOURCES=os.path.join(sysconfig.get_paths()["stdlib"], "json"))
    assert p.returncode != 0
    assert "http://127.0.0.1:9/v1" in p.stderr
    assert sorted(os.listdir(run / ".done")) == ["raw.json"]


def test_arms_choose_the_steps(tmp_path):
    """ARMS=raw needs no teacher: its steps are skipped, even with none answering. Bad ARMS are refused."""
    run = tmp_path / "run"
    p = run_sh(run, "http://127.0.0.1:9/v1", "cpu", ARMS="raw", STOP_AFTER="bins",
               CODE_SOURCES=os.path.join(sysconfig.get_paths()["stdlib"], "json"))
    assert p.returncode == 0, explain(p)
    assert sorted(os.listdir(run / ".done")) == ["bins.json", "raw.json"]
    assert 'annotate: not needed by ARMS="raw", skipped' in p.stdout
    for arms, message in (("raw tiny", "unknown arm 'tiny'"), ("raw phi1", "phi1 is base finetuned")):
        p = run_sh(tmp_path / "bad", "http://127.0.0.1:9/v1", "cpu", ARMS=arms)
        assert p.returncode == 2 and message in p.stderr, explain(p)


def test_paper_scale_says_what_it_needs():
    env = {k: v for k, v in os.environ.items() if k not in ("API_BASE", "MODEL", "CODE_SOURCES")}
    p = subprocess.run(["bash", "run.sh", "paper"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "API_BASE" in p.stderr and "CODE_SOURCES" in p.stderr
    p = subprocess.run(["bash", "run.sh", "laptop"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "usage" in p.stderr
    if not torch.cuda.is_available():
        p = subprocess.run(["bash", "run.sh", "gpu"], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and "no GPU" in p.stderr


def test_report_of_an_empty_or_odd_run_says_so(tmp_path):
    text = open(report.write_report(str(tmp_path))).read()
    for section in SECTIONS:
        assert section in text
    assert text.count("missing") >= 10  # every number it could not find, not a crash
    assert "| **total** | **0s** |" in text
    (tmp_path / "filter").mkdir()
    (tmp_path / "filter" / "metrics.json").write_text('{"accuracy": 0.9}')  # from some other filter.py
    text = open(report.write_report(str(tmp_path))).read()
    assert "## Forest (held-out)\n\nunreadable: KeyError" in text
    assert "## Training curves" in text  # the sections after it are still written


def test_report_counts_distinct_completions(tmp_path):
    """A model that writes the same text for every problem is named as such beside its 0%, and the
    outcomes say whether its code runs at all."""
    (tmp_path / "eval").mkdir()
    rows = [{"task_id": f"HumanEval/{i}", "completion": "    pass\n" if i else "    return 1\n"} for i in range(4)]
    (tmp_path / "eval" / "phi1-humaneval.samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "eval" / "phi1-humaneval.json").write_text(json.dumps(
        {"pass@1": 0.25, "problems": 4, "results_count": {"failed: SyntaxError": 1, "passed": 1, "failed: AssertionError": 2}}))
    text = open(report.write_report(str(tmp_path))).read()
    assert "Distinct completions (1 means the model ignores the prompt): phi1 HumanEval 2 of 4." in text
    assert "- phi1 HumanEval: AssertionError 2, SyntaxError 1, passed 1" in text
