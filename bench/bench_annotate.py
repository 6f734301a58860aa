"""
bench_annotate.py: what the teacher's judgement costs, and whether it means anything (annotate.py, anchors.py).

    python llm.py serve --port 8091 &                               # the local teacher, SmolLM2-135M
    python bench/bench_annotate.py --api-base http://127.0.0.1:8091/v1    # both parts: the figures in docs/filter.md
    python bench/bench_annotate.py --api-base ... --part cost --docs 12
    python bench/bench_annotate.py --api-base ... --part prompts --variants score yes-no --json out.json

cost     seconds per document of --method answer (the paper's prompt and an answer of up to 64 tokens: what
         annotate did before) and of --method score (two requests of one answer token), on the documents that
         run.sh's cpu scale annotates (the seed-0 sample of the stdlib, 1,000 characters each). Interleaved
         document by document, the first of the two alternating; before each, an untimed request of the same
         method about a one-line file leaves llama.cpp's cache as a run leaves it between two documents (the
         chat template and score's worked examples cached, the document not); medians. A third column asks
         the two orders with such a request between them: what sharing the document prefix saves.
prompts  the AUC of each way of asking (VARIANTS) on the anchor files, tune and test apart (anchors.py),
         with bootstrap 95% intervals. The rule, fixed before the first run: annotate.py asks the paper's
         question ("zero-shot") unless another way beats it on the tune anchors by more than noise, its whole
         tune interval above the zero-shot tune AUC. "few-shot" did (0.98, 0.91-1.00, against 0.59), so it is
         annotate's --method score now. The test anchors, on which nothing was chosen, give the figure to
         believe. A score that neither answer token holds counts as 0.5.
"""

import argparse
import json
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the repo root: run from anywhere
from anchors import auc_with_ci, load_anchors
from annotate import CRITERIA, PROMPTS, QUESTION, ask, sample_documents, score, score_messages
from llm import add_llm_args, chat, option_probabilities
from prepare import DEFAULT_SOURCE, MAX_BYTES

FILE = "Here is a code file.\n\n```\n{text}\n```\n\n"
REFERENCE = ("class Config:\n    def __init__(self, path):\n        self.path = path\n        self.values = {}\n\n"
             "    def load(self):\n        with open(self.path) as f:\n            for line in f:\n"
             "                k, v = line.split('=', 1)\n                self.values[k.strip()] = v.strip()\n")


def both_orders(template, options, text, kw, before=()):
    """Mean over both orders of the options of P(options[0]) (None if no order's answer token held either)."""
    p = []
    for first, second in (options, options[::-1]):
        content = template.format(text=text, first=first, second=second)
        probs, _, _ = option_probabilities([*before, {"role": "user", "content": content}], options, **kw)
        if probs:
            p.append(probs[options[0]])
    return sum(p) / len(p) if p else None


def pairwise(text, kw):
    """P(the document is preferred to a fixed, plain reference file), the document shown first and second."""
    question = ("Here are two code files.\n\nFile A:\n```\n{a}\n```\n\nFile B:\n```\n{b}\n```\n\nWhich file teaches a "
                "student more about basic coding concepts? Answer with one letter: A or B.")
    p = []
    for a, b, mine in ((text, REFERENCE, "A"), (REFERENCE, text, "B")):
        probs, _, _ = option_probabilities([{"role": "user", "content": question.format(a=a, b=b)}], ("A", "B"), **kw)
        if probs:
            p.append(probs[mine])
    return sum(p) / len(p) if p else None


VARIANTS = {  # name: (what it asks, text, llm keywords, args) -> score in [0, 1] or None
    "answer": ("the paper's prompt, the label parsed from a written answer (high 1, low 0): annotate before",
               lambda text, kw, args: ask(text, args)["teacher_score"]),
    "zero-shot": ("the paper's question, P(high) from one answer token, both orders (annotate's first --method score)",
                  lambda text, kw, args: both_orders(PROMPTS["score"][1], ("high", "low"), text, kw)),
    "yes-no": ("'Is this file a good lesson for a student who wants to learn basic coding concepts?' P(yes)",
               lambda text, kw, args: both_orders(FILE + "Is this file a good lesson for a student who wants to learn "
                                                  "basic coding concepts? Answer with one word: {first} or {second}.",
                                                  ("yes", "no"), text, kw)),
    "data-or-code": ("'Is this file mostly data (tables, constants, lists) or mostly code that does something?' P(code)",
                     lambda text, kw, args: both_orders(FILE + "Is this file mostly data (tables, constants, long lists "
                                                        "of names or numbers) or mostly code that does something? "
                                                        "Answer with one word: {first} or {second}.",
                                                        ("code", "data"), text, kw)),
    "explains": ("'Does this file explain in plain English what its code does and how?' P(yes)",
                 lambda text, kw, args: both_orders(FILE + "Does this file explain in plain English what its code "
                                                    "does and how? Answer with one word: {first} or {second}.",
                                                    ("yes", "no"), text, kw)),
    "few-shot": ("the same after two worked examples, a made-up lesson (high) and table (low): annotate --method score",
                 lambda text, kw, args: score(text, args)["teacher_score"]),
    "pairwise": ("'Which file teaches more?' against a fixed plain reference file, both positions",
                 lambda text, kw, args: pairwise(text, kw)),
}


def annotate_args(args, method):
    return argparse.Namespace(api_base=args.api_base, model=args.model, api_key_env=args.api_key_env, timeout=600.0,
                              retries=2, method=method, scale="binary")


def prime(method, kw):
    """Judge a one-line file with `method`, untimed: llama.cpp's cache then holds what any document of a run
    shares with the previous one (the chat template, score's worked examples), and not the document."""
    if method == "score":
        option_probabilities(score_messages("pass\n", "high", "low"), ("high", "low"), **kw)
    else:
        chat([{"role": "user", "content": PROMPTS["binary"][1].format(text="pass\n")}], max_tokens=1, **kw)


def timed(fn, *a, **k):
    t = time.perf_counter()
    out = fn(*a, **k)
    return time.perf_counter() - t, out


def cost(args):
    docs, _ = sample_documents([DEFAULT_SOURCE], args.docs, 0, args.max_chars, "*.py", MAX_BYTES)
    old, new = annotate_args(args, "answer"), annotate_args(args, "score")
    kw = {k: getattr(new, k) for k in ("api_base", "model", "api_key_env", "timeout", "retries")}

    def cold_orders(text):  # the two orders, each after a request that evicts the document
        t = 0.0
        for first, second in (("high", "low"), ("low", "high")):
            prime("score", kw)
            t += timed(option_probabilities, score_messages(text, first, second), ("high", "low"), **kw)[0]
        return t

    runs = []
    for i, (_, doc_id, text) in enumerate(docs):
        row = {"id": doc_id}
        order = [("answer", ask, old), ("score", score, new)]
        for name, fn, a in (order if i % 2 == 0 else order[::-1]):
            prime(name, kw)
            row[name], out = timed(fn, text, a)
            row[f"{name}_usage"] = out["usage"]
        row["score_cold"] = cold_orders(text)
        runs.append(row)
        print(json.dumps(row), flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in ("answer", "score", "score_cold")}
    return {"documents": len(runs), "median_seconds": med, "runs": runs,
            "median_answer_tokens": statistics.median(r["answer_usage"]["completion_tokens"] for r in runs),
            "median_prompt_tokens": statistics.median(r["answer_usage"]["prompt_tokens"] for r in runs)}


def prompts(args):
    out = {}
    anchors = {split: load_anchors(split)[0] for split in ("tune", "test")}
    for name in args.variants:
        what, fn = VARIANTS[name]
        a = annotate_args(args, "score" if name != "answer" else "answer")
        kw = {k: getattr(a, k) for k in ("api_base", "model", "api_key_env", "timeout", "retries")}
        t0, result = time.perf_counter(), {"asks": what}
        for split, rows in anchors.items():
            scores = [fn(r["text"][:args.max_chars], kw, a) for r in rows]
            result[f"{split}_unscored"] = sum(s is None for s in scores)
            scores = [0.5 if s is None else s for s in scores]
            result[split] = auc_with_ci([s for s, r in zip(scores, rows) if r["kind"] == "lesson"],
                                        [s for s, r in zip(scores, rows) if r["kind"] == "data"])
            result[f"{split}_scores"] = {r["path"]: round(s, 4) for s, r in zip(scores, rows)}
        result["seconds"] = round(time.perf_counter() - t0, 1)
        out[name] = result
        print(json.dumps({name: {k: result[k] for k in ("tune", "test", "seconds")}}), flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_llm_args(parser)
    parser.add_argument("--part", choices=("cost", "prompts", "both"), default="both")
    parser.add_argument("--docs", type=int, default=12, help="documents for the cost part (default: %(default)s)")
    parser.add_argument("--max-chars", type=int, default=1000, help="characters shown (default: run.sh cpu's %(default)s)")
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--json", help="write every measurement here")
    args = parser.parse_args()
    result = {"api_base": args.api_base, "model": args.model, "question": QUESTION, "criteria": CRITERIA,
              "when": time.strftime("%Y-%m-%d %H:%M")}
    if args.part in ("cost", "both"):
        result["cost"] = cost(args)
        print("seconds per document, medians:", json.dumps(result["cost"]["median_seconds"]))
    if args.part in ("prompts", "both"):
        result["prompts"] = prompts(args)
        print("| way of asking | tune AUC (95% CI) | test AUC (95% CI) |\n|---|---|---|")
        for name, r in result["prompts"].items():
            print(f"| {name}: {r['asks']} | " + " | ".join(
                f"{r[s]['auc']:.2f} ({r[s]['ci95'][0]:.2f}-{r[s]['ci95'][1]:.2f})" for s in ("tune", "test")) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
