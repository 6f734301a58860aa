r"""
decontaminate.py: drop training rows that resemble HumanEval or MBPP (paper section 5), before training on them.

    python decontaminate.py data/exercises.jsonl --out data/exercises.clean.jsonl        # + .contamination.json
    python decontaminate.py data/textbooks.jsonl --out data/textbooks.clean.jsonl --report contamination.json \
        --data-dir ../shared/data --tau 0.95 --embed-ckpt out/ckpt.pt --l2-threshold 0.2

A row is dropped when any of three checks flags it against the benchmarks' problems (prompt, reference solution
and tests, from evaluate.load_problems):
  * 13-gram overlap: it shares a run of 13 words with a problem (runs made only of numbers do not count);
  * AST match rate (the paper's syntax-based distance): one of its functions, reduced to the pre-order sequence
    of its AST node types (names, comments and docstrings leave no trace), has 1 - edit distance / longer
    length >= tau with a reference solution's function. The paper tried tau from 0.95 down to 0.8;
  * embedding distance, optional: mean-pooled final hidden states of a checkpoint (the paper used CodeGen-Mono
    350M) within --l2-threshold of a problem's. Without a threshold, the report lists the 20 nearest pairs.
The report (--report, default OUT with .contamination.json) says which rows went, by which check, and why.
"""

import argparse
import ast
import collections
import json
import re
import warnings

import numpy as np
from tqdm import tqdm

from evaluate import DATASETS, load_problems, write_json
from prepare import atomic_write, iter_jsonl

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

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("jsonl", help="training file to compare with --tasks")
    parser.add_argument("--out", required=True, help="the kept rows (JSONL)")
    parser.add_argument("--report", help="contamination report JSON (default: --out with .contamination.json)")
    parser.add_argument("--tasks", nargs="+", default=["humaneval", "mbpp"], choices=sorted(DATASETS))
    parser.add_argument("--data-dir", help="directory holding the benchmark files (offline); default: download")
    parser.add_argument("--cache-dir", help="where downloads go (default: ~/.cache/phi1)")
    parser.add_argument("--field", default="text", help="field of each row that holds its text")
    parser.add_argument("--tau", type=float, default=0.9, help="AST match rate threshold (paper: 0.95 ... 0.8)")
    parser.add_argument("--ngram", type=int, default=13)
    parser.add_argument("--embed-ckpt", help="also compare embeddings from this checkpoint")
    parser.add_argument("--l2-threshold", type=float, help="L2 distance (unit embeddings) at or below which to drop")
    parser.add_argument("--device", default="cpu", help="for --embed-ckpt")
    args = parser.parse_args(argv)

    report_path = args.report or re.sub(r"(\.jsonl)?$", ".contamination.json", args.out, count=1)
    skipped = []
    rows = list(iter_jsonl(args.jsonl, skipped))
    embed = checkpoint_embedder(args.embed_ckpt, args.device) if args.embed_ckpt else None
    kept, report = decontaminate(rows, args.tasks, args.data_dir, args.tau, args.ngram, args.field, embed,
                                 args.l2_threshold, cache_dir=args.cache_dir)
    report["malformed_lines"] = len(skipped)
    with atomic_write(args.out, encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in kept)
    write_json(report_path, report)
    print(json.dumps({k: v for k, v in report.items() if k != "flagged"}, indent=1))


if __name__ == "__main__":
    main()
