"""
synth.py: synthetic "textbooks" and "exercises" from any OpenAI-compatible LLM (phi-1, section 2.2).

phi-1's second data idea: about 1B tokens of GPT-3.5-written textbook sections (prose with worked
code) and 180M tokens of exercises (a function signature with a docstring, then its solution).
Its hard part is diversity, so every prompt is assembled from random draws (prompts.py: a topic,
an audience, a style, random words, a function name ...; the paper's "randomness in the prompt").
Row i of seed s always gets the same prompt, so its id f"{kind}-{s}-{i}" is stable: a killed run
resumes where it stopped, and a rerun with a larger --n tops the file up.

    python llm.py serve --port 8080 &          # the local SmolLM2 teacher (or any other endpoint)
    python synth.py textbooks --n 200 --out data/textbooks.jsonl --workers 2 --repeat-penalty 1.0
    python synth.py exercises --n 200 --out data/exercises.jsonl --workers 2 --repeat-penalty 1.0 \
        --completion --temperature 0.5 --max-tokens 256 --examples executed   # the local teacher, as run.sh asks
    python decontaminate.py data/exercises.jsonl --out data/exercises.clean.jsonl  # before training
    python synth.py report data/textbooks.jsonl  # distinct n-grams, near duplicates, coverage

A paid endpoint: --api-base https://api.openai.com/v1 --model gpt-4o-mini --rpm 500
--price-in 0.15 --price-out 0.60 (key in $OPENAI_API_KEY); it writes exercises with its own >>> examples,
which must pass (--examples teacher, the default). Each row is one JSON line with `text` (what prepare.py
reads) and its generation parameters. Every kept exercise's examples call its function and pass in the
sandbox, and `examples_source` says whose they are (exercises.py). Answers that fail validation are never
written to --out; they go to FILE.rejected.jsonl with the reason (paid for, so kept for reading, and not
asked again on resume: delete that file to retry them). FILE.report.json says how the run ended (done,
interrupted by Ctrl-C or run.sh's time budget, gave up, error) with its counts, speed, tokens, cost and
settings, and the diversity report; it is written however the run ends.

The local SmolLM2-135M teacher almost never writes exercises whose examples pass (0 of 49 answers, docs/synth.md),
so run.sh asks it for code to complete from `def name(` (--completion), with llama.cpp's repeat penalty off
(--repeat-penalty 1.0), and records the behaviour its functions show when run (--examples executed).
"""

import argparse
import ast
import collections
import concurrent.futures as cf
import hashlib
import itertools
import json
import os
import re
import signal
import sys
import textwrap
import threading
import time
import types
import zlib

import numpy as np
import requests
from tqdm import tqdm

from exercises import calls_of, prove, split_exercise
from llm import LLMError, add_llm_args, chat, complete
from prepare import atomic_write, iter_jsonl
from prompts import (AUDIENCES, COMPLETION_STOPS, CONSTRAINTS, PLACEHOLDERS, STYLES, TOPICS, WORDS,
                     completion_prompt, load_seed_docs, make_messages, sample_params, seeded)

# ----------------------------------------------------------------------------
# Parsing: lenient in what we extract from a reply, strict in what we accept.

PYTHON_FENCES = ("", "python", "py", "python3")


def fenced_blocks(text):
    """(language, code) of each ``` block; an unclosed last block counts (a reply cut at max_tokens)."""
    blocks, lang, lines = [], "", None
    for line in text.splitlines():
        if line.strip().startswith("```"):
            if lines is None:
                lang, lines = line.strip()[3:].strip().lower(), []
            else:
                blocks.append((lang, "\n".join(lines)))
                lines = None
        elif lines is not None:
            lines.append(line)
    if lines is not None:
        blocks.append((lang, "\n".join(lines)))
    return blocks


def parse_prefix(code):
    """The longest run of whole lines, from the first line that looks like code, that parses.
    Small models wrap code in prose or run past its end; we keep just the code."""
    lines = textwrap.dedent(code).splitlines()
    start = next((k for k, s in enumerate(lines) if re.match(r"(def |async def |from |import |@)", s)), None)
    if start is None:
        return None
    lines = lines[start:]
    for end in range(len(lines), 0, -1):
        try:
            return ast.parse("\n".join(lines[:end])), lines[:end]
        except (SyntaxError, ValueError):
            continue
    return None


def parse_textbook(reply):
    """A textbook section: enough prose, and at least one closed Python block that parses."""
    text = reply.strip()
    fences = [k for k, line in enumerate(text.splitlines()) if line.strip().startswith("```")]
    if len(fences) % 2:  # a block left open (cut at max_tokens, or never closed): keep what precedes it
        text = "\n".join(text.splitlines()[:fences[-1]]).rstrip()
    blocks = [code for lang, code in fenced_blocks(text) if lang in PYTHON_FENCES]
    if not blocks:
        raise ValueError("no python code block")
    if not any(_parses(code) for code in blocks):
        raise ValueError("no code block parses")
    inside, prose = False, []
    for line in text.splitlines():  # fences are whole lines; a ``` inside a sentence is prose
        inside ^= line.strip().startswith("```")
        prose += [] if inside or line.strip().startswith("```") else line.split()
    if len(prose) < 50:
        raise ValueError("too little prose")
    return {"text": text + "\n"}


def _parses(code):
    try:
        ast.parse(textwrap.dedent(code))
        return code.strip() != ""
    except (SyntaxError, ValueError):
        return False


def code_blocks(reply):
    """(tree, lines) of each part of a reply that parses as code: its python blocks, then the reply itself."""
    for code in [code for lang, code in fenced_blocks(reply) if lang in PYTHON_FENCES] + [reply]:
        parsed = parse_prefix(code)
        if parsed is not None:
            yield parsed


def parse_exercise(reply, name=None):
    """The exercise in a reply: the top-level function called `name` (any, if None; one with >>> examples
    first) with a docstring and a body, as a HumanEval-style prompt and solution (exercises.split_exercise).
    Everything else in the reply is dropped. Its examples are judged by running them (exercises.prove)."""
    problem = "no function with a docstring"
    for tree, lines in code_blocks(reply):
        fns = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(n)]
        if name and fns and name not in [n.name for n in fns]:
            problem = f"not the drawn name: {fns[0].name}() instead of {name}()"
        fns = [n for n in fns if n.name == (name or n.name)]
        if not fns:
            continue
        fn = max(fns, key=lambda n: ">>>" in ast.get_docstring(n))
        if any(p in ast.get_source_segment("\n".join(lines), fn) for p in PLACEHOLDERS):
            problem = "copied the format skeleton"
        elif all(isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
                 for s in fn.body[1:]):
            problem = "empty solution"
        else:
            return split_exercise(tree, lines, fn)
    raise ValueError(problem)


def exercise(reply, params, args):
    """The row of an exercise reply whose examples are proven by running them (exercises.prove), or ValueError."""
    name = params["function"]
    row = parse_exercise(reply, name)
    calls = [c for tree, _ in code_blocks(reply) for c in calls_of(tree, name)]  # the teacher's inputs
    return prove(row, calls, params["words"], args.examples == "executed", args.min_examples, args.sandbox_timeout)


# ----------------------------------------------------------------------------
# Duplicates: exact (hash of normalised text) and near (MinHash signatures + LSH banding).

NUM_PERM, BANDS = 128, 16  # 16 bands of 8 rows: pairs above Jaccard ~0.7 (=(1/16)**(1/8)) meet in a bucket
PRIME = (1 << 31) - 1      # hash values < 2**31, so a*x + b stays below 2**63 in uint64
_rng = np.random.default_rng(20230620)
PERM_A = _rng.integers(1, PRIME, NUM_PERM, dtype=np.uint64)
PERM_B = _rng.integers(0, PRIME, NUM_PERM, dtype=np.uint64)


def minhash(text, n=5):
    """MinHash signature of the set of word n-grams: P(sig_a[k] == sig_b[k]) = Jaccard(a, b)."""
    words = re.findall(r"\w+", text.lower())
    grams = {" ".join(words[j:j + n]) for j in range(max(1, len(words) - n + 1))}
    x = np.fromiter((zlib.crc32(g.encode()) for g in grams), np.uint64, len(grams)) % PRIME
    return ((x[:, None] * PERM_A + PERM_B) % PRIME).min(axis=0)


def new_dedup_index():
    return {"exact": {}, "buckets": collections.defaultdict(list), "sigs": [], "ids": []}


def check_duplicate(index, text, row_id, threshold=0.8):
    """None if text is new (and remember it), else why it is a duplicate of an earlier row."""
    key = hashlib.sha1(" ".join(text.lower().split()).encode()).hexdigest()
    if key in index["exact"]:
        return f"exact duplicate: of {index['exact'][key]}"
    sig = minhash(text).astype(np.uint32)  # values < 2**31: half the memory of uint64
    keys = [hash((b, sig[b::BANDS].tobytes())) for b in range(BANDS)]  # a bucket per (band, its 8 values)
    for j in {j for k in keys for j in index["buckets"].get(k, ())}:
        similarity = float(np.mean(index["sigs"][j] == sig))
        if similarity >= threshold:
            return f"near duplicate: of {index['ids'][j]} (Jaccard ~{similarity:.2f})"
    index["exact"][key] = row_id
    for k in keys:
        index["buckets"][k].append(len(index["sigs"]))
    index["sigs"].append(sig)
    index["ids"].append(row_id)
    return None


def diversity_report(rows, kind=None):
    """How varied a set of rows is: distinct n-gram ratios, MinHash near-duplicate rate, coverage."""
    rows = list(rows)
    report = {"rows": len(rows)}
    words = [re.findall(r"\w+", r.get("text", "").lower()) for r in rows]
    for n in (1, 2, 4):
        grams = [tuple(w[j:j + n]) for w in words for j in range(len(w) - n + 1)]
        report[f"distinct_{n}"] = round(len(set(grams)) / max(1, len(grams)), 4)
    index = new_dedup_index()
    dups = sum(check_duplicate(index, r.get("text", ""), r.get("id")) is not None for r in rows)
    report["duplicate_rate"] = round(dups / max(1, len(rows)), 4)
    kind = kind or (rows[0].get("kind") if rows else "textbooks")
    subtopics = {(r.get("topic"), r.get("subtopic")) for r in rows}
    report["coverage"] = {
        "topics": round(len({t for t, _ in subtopics} & set(TOPICS)) / len(TOPICS), 4),
        "subtopics": round(len(subtopics & {(t, s) for t in TOPICS for s in TOPICS[t]}) /
                           sum(map(len, TOPICS.values())), 4),
        "audiences": round(len({r.get("audience") for r in rows} & set(AUDIENCES)) / len(AUDIENCES), 4),
        "styles": round(len({r.get("style") for r in rows} & set(STYLES.get(kind, []))) /
                        len(STYLES.get(kind, [1])), 4),
        "constraints": round(len({r.get("constraint") for r in rows} & set(CONSTRAINTS)) / len(CONSTRAINTS), 4),
        "words": round(len({w for r in rows for w in r.get("words") or []} & set(WORDS)) / len(WORDS), 4),
    }
    return report


# ----------------------------------------------------------------------------
# Generation: a pool of workers, a rate limit, and an append-only file that survives kills.

def rate_limiter(rpm):
    """A token bucket shared by all workers: on average at most `rpm` requests a minute, with bursts
    of at most one second's worth. Every HTTP request takes a token, retries included."""
    if not rpm:
        return lambda: None
    lock, rate, capacity = threading.Lock(), rpm / 60.0, max(1.0, rpm / 60.0)
    state = {"tokens": 1.0, "time": time.monotonic()}

    def acquire():
        while True:
            with lock:
                now = time.monotonic()
                state["tokens"] = min(capacity, state["tokens"] + (now - state["time"]) * rate)
                state["time"] = now
                if state["tokens"] >= 1.0:
                    state["tokens"] -= 1.0
                    return
                wait = (1.0 - state["tokens"]) / rate
            time.sleep(wait)
    return acquire


def limited_poster(rpm):
    """An object with .post() for llm.chat(session=...): rate-limited, one keep-alive Session per thread."""
    acquire, local = rate_limiter(rpm), threading.local()

    def post(*args, **kwargs):
        acquire()
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session.post(*args, **kwargs)
    return types.SimpleNamespace(post=post)


def ask(params, args, poster):
    """One request for row `params`: (reply, usage). With --completion the prompt is code for the teacher to
    continue, and the reply is that code: the prompt's `def name(` and what the teacher wrote after it."""
    settings = dict(api_base=args.api_base, model=args.model, api_key_env=args.api_key_env, session=poster,
                    temperature=args.temperature, max_tokens=args.max_tokens, timeout=args.timeout,
                    retries=args.retries)
    if args.repeat_penalty is not None:  # llama.cpp's own field; OpenAI's API rejects it
        settings["repeat_penalty"] = args.repeat_penalty
    if getattr(args, "completion", False):
        prompt = completion_prompt(params)
        text, usage = complete(prompt, stop=COMPLETION_STOPS, **settings)
        return prompt[prompt.rindex("def "):] + text, usage
    return chat(make_messages(params), **settings)


def make_row(params, args, poster):
    """Ask for one row, validate it, retry a bad answer up to --attempts times.
    Returns (id, row or None, why it failed, token usage of all attempts, last reply)."""
    usage, problem, reply = {"prompt_tokens": 0, "completion_tokens": 0}, "no attempt", ""
    for _ in range(args.attempts):
        reply, u = ask(params, args, poster)
        usage = {k: usage[k] + u[k] for k in usage}
        try:
            made = parse_textbook(reply) if params["kind"] == "textbooks" else exercise(reply, params, args)
        except ValueError as e:
            problem = str(e)
            continue
        return params["id"], {**params, **made, "model": args.model, "usage": usage}, None, usage, reply
    return params["id"], None, problem, usage, reply


def repair_tail(path):
    """A writer killed mid-line leaves a torn last line with no newline: cut it off, so the next
    append starts on a fresh line. A complete JSON object missing only its newline gets one."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        cut = data.rfind(b"\n") + 1
        try:
            if isinstance(json.loads(data[cut:]), dict):
                f.write(b"\n")
                return
        except ValueError:
            pass
        f.truncate(cut)
        print(f"{path}: removed a torn last line ({len(data) - cut} bytes) left by an interrupted run",
              file=sys.stderr)


def resume(args):
    """What is already in --out (and its rejects file): the row count, the ids not to ask for again,
    and the duplicate index that new rows are checked against."""
    out, rejects_path = args.out, args.out + ".rejected.jsonl"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    skipped, rows, done = [], [], set()
    if os.path.exists(out):
        repair_tail(out)
        rows = list(iter_jsonl(out, skipped))
    if skipped:
        print(f"{out}: skipped {len(skipped)} malformed lines, e.g. {skipped[0][0]}", file=sys.stderr)
    if any(r.get("kind") != args.cmd for r in rows):
        raise SystemExit(f"{out} holds rows that are not {args.cmd}; write {args.cmd} to another file")
    if os.path.exists(rejects_path):
        repair_tail(rejects_path)
        done = {r.get("id") for r in iter_jsonl(rejects_path)}  # paid for once: not asked again
    index = new_dedup_index()
    for r in rows:
        check_duplicate(index, r.get("text", ""), r.get("id"), args.near_dup)
    return len(rows), done | {r.get("id") for r in rows}, index


def generate(args):
    kind, out, rejects_path = args.cmd, args.out, args.out + ".rejected.jsonl"
    kept, done, index = resume(args)
    todo = (i for i in itertools.count() if f"{kind}-{args.seed}-{i}" not in done)
    seed_docs = load_seed_docs(args.seed_from) if getattr(args, "seed_from", None) else None
    stats = {"kept": 0, "rejected": collections.Counter(), "llm_errors": 0, "prompt_tokens": 0,
             "completion_tokens": 0}
    poster, pool, pending = limited_poster(args.rpm), cf.ThreadPoolExecutor(args.workers), set()
    failures_in_a_row = errors_in_a_row = 0
    bar = tqdm(total=args.n, initial=min(kept, args.n), desc=f"{kind} -> {out}", unit="row")
    start, ended = time.monotonic(), None
    try:
        with open(out, "a", encoding="utf-8") as f, open(rejects_path, "a", encoding="utf-8") as frej:
            while kept < args.n:
                # Never more requests in flight than rows still missing: no money spent on extras.
                while kept + len(pending) < args.n and len(pending) < args.workers:
                    params = sample_params(kind, args.seed, next(todo))
                    params = seeded(params, seed_docs) if seed_docs else params
                    pending.add(pool.submit(make_row, params, args, poster))
                finished, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    try:
                        row_id, row, problem, usage, reply = fut.result()
                    except LLMError as e:  # the endpoint is down or refuses: not this row's fault; rerun later
                        stats["llm_errors"] += 1
                        errors_in_a_row += 1
                        if errors_in_a_row >= args.give_up_errors:
                            raise SystemExit(f"giving up after {errors_in_a_row} failed requests in a row: {e}")
                        continue
                    errors_in_a_row = 0
                    stats["prompt_tokens"] += usage["prompt_tokens"]
                    stats["completion_tokens"] += usage["completion_tokens"]
                    problem = problem or check_duplicate(index, row["text"], row_id, args.near_dup)
                    if problem:  # never written to --out, but kept for reading: it was paid for
                        stats["rejected"][problem.split(":")[0]] += 1  # reasons read "category: detail"
                        frej.write(json.dumps({"id": row_id, "reason": problem, "usage": usage, "reply": reply},
                                              ensure_ascii=False) + "\n")
                        frej.flush()
                        failures_in_a_row += 1
                        if failures_in_a_row >= args.give_up_rejects:
                            raise SystemExit(f"giving up: {failures_in_a_row} answers in a row were rejected "
                                             f"(last: {problem}); see {rejects_path}")
                        continue
                    failures_in_a_row = 0
                    # One write of one whole line, then flush: a kill can tear at most this line.
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    f.flush()
                    kept += 1
                    stats["kept"] += 1
                    bar.update(1)
                    bar.set_postfix(rejected=sum(stats["rejected"].values()), cost=f"${cost(stats, args):.4f}")
        ended = "done"
    except KeyboardInterrupt:  # Ctrl-C, or run.sh's time budget (timeout -s INT): rows written so far are safe
        ended = "interrupted"
    except SystemExit as e:  # giving up on the endpoint or its answers
        ended = f"gave up: {e}"
        raise
    except Exception as e:
        ended = f"error: {type(e).__name__}: {e}"
        raise
    finally:  # the report, however the run ends
        pool.shutdown(wait=False, cancel_futures=True)
        bar.close()
        stats["seconds"] = round(time.monotonic() - start, 1)
        write_report(kind, stats, args, ended)
    if ended == "interrupted":
        print(f"interrupted with {kept} rows in {out}; rerun the same command to resume", file=sys.stderr)
        os._exit(130)  # at once: requests in flight may take minutes, and their threads would hold up exit


def cost(stats, args):
    return (stats["prompt_tokens"] * args.price_in + stats["completion_tokens"] * args.price_out) / 1e6


def write_report(kind, stats, args, ended):
    """FILE.report.json: how this run ended, its counts, yield, speed, tokens and cost, the request settings,
    and the diversity of the whole file."""
    out = args.out
    tried = stats["kept"] + sum(stats["rejected"].values())
    settings = {k: getattr(args, k, None) for k in ("temperature", "max_tokens", "repeat_penalty", "completion",
                                                    "examples", "min_examples", "seed_from", "workers")}
    rows = list(iter_jsonl(out)) if os.path.exists(out) else []
    report = {"file": out, "kind": kind, "model": args.model, "api_base": args.api_base, "seed": args.seed,
              "settings": settings, "ended": ended,
              "this_run": {**stats, "rejected": dict(stats["rejected"]),
                           "yield": round(stats["kept"] / tried, 4) if tried else None,
                           "kept_per_minute": round(60 * stats["kept"] / stats["seconds"], 2) if stats["seconds"]
                           else None,
                           "cost_usd": round(cost(stats, args), 6)},
              **({"examples_source": dict(collections.Counter(r.get("examples_source") for r in rows))}
                 if kind == "exercises" else {}),
              "diversity": diversity_report(rows, kind)}
    with atomic_write(out + ".report.json") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report, indent=1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for kind, max_tokens in (("textbooks", 1024), ("exercises", 512)):
        g = sub.add_parser(kind, help=f"generate {kind} into an append-only JSONL file")
        g.add_argument("--n", type=int, required=True, help="total rows wanted in --out (a rerun tops it up)")
        g.add_argument("--out", required=True, help="output .jsonl (appended to; resumable)")
        add_llm_args(g)
        g.add_argument("--workers", type=int, default=4, help="concurrent requests (default: %(default)s)")
        g.add_argument("--seed", type=int, default=0, help="seed of the prompt draws (default: %(default)s)")
        g.add_argument("--rpm", type=float, default=0, help="requests per minute limit, 0 = none")
        g.add_argument("--temperature", type=float, default=0.8)
        g.add_argument("--max-tokens", type=int, default=max_tokens)
        g.add_argument("--timeout", type=float, default=120.0, help="seconds per HTTP request")
        g.add_argument("--retries", type=int, default=6, help="HTTP retries per request (429/5xx/timeouts)")
        g.add_argument("--attempts", type=int, default=3, help="requests per row when answers fail validation")
        g.add_argument("--near-dup", type=float, default=0.8, help="MinHash Jaccard above which a row is dropped")
        g.add_argument("--repeat-penalty", type=float, default=None,
                       help="llama.cpp's repeat_penalty (it defaults to 1.1, which penalizes writing a function's "
                            "name again: 1.0 turns it off); not sent unless given, as OpenAI's API rejects it")
        if kind == "textbooks":
            g.add_argument("--seed-from", metavar="JSONL",
                           help="seed each prompt with a function or class drawn from this file's `text` rows "
                                "(e.g. filter.py's kept.jsonl) instead of a taxonomy topic")
        if kind == "exercises":
            g.add_argument("--completion", action="store_true",
                           help="POST /completions with a code prompt ending in `def NAME(` instead of a chat "
                                "message: best for small code models (the local teacher); chat-only APIs lack it")
            g.add_argument("--examples", choices=("teacher", "executed"), default="teacher",
                           help="teacher (default): keep an exercise only if its own >>> examples pass; executed: "
                                "else run the function on inputs and write what it returns as the examples "
                                "(for weak teachers; rows say which in examples_source)")
            g.add_argument("--min-examples", type=int, default=1,
                           help="examples that call the function and pass, at least 1 (default: %(default)s); "
                                "with --examples executed, calls that return distinct values")
            g.add_argument("--sandbox-timeout", type=float, default=10.0, help="seconds to run the examples")
        g.add_argument("--price-in", type=float, default=0.0, help="USD per 1M prompt tokens, for the cost estimate")
        g.add_argument("--price-out", type=float, default=0.0, help="USD per 1M completion tokens")
        g.add_argument("--give-up-rejects", type=int, default=200,
                       help="stop after this many invalid answers in a row (default: %(default)s)")
        g.add_argument("--give-up-errors", type=int, default=8,
                       help="stop after this many failed requests in a row (default: %(default)s)")
    r = sub.add_parser("report", help="print the diversity report of a JSONL file")
    r.add_argument("input")
    args = parser.parse_args(argv)
    if args.cmd == "report":
        print(json.dumps(diversity_report(iter_jsonl(args.input)), indent=1))
    else:
        if args.n < 0 or args.workers < 1:
            parser.error("--n must be >= 0 and --workers >= 1")
        if args.cmd == "exercises" and args.min_examples < 1:
            parser.error("--min-examples must be >= 1: an exercise's examples are what proves it runs")
        previous = {s: signal.signal(s, interrupt_once) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            generate(args)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def interrupt_once(signum, frame):
    """Ctrl-C, `kill` and run.sh's `timeout -s INT` all end a run the same way, once: timeout(1) signals the
    process and then its whole process group, and a second KeyboardInterrupt would cut the report short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
