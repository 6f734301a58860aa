"""
filter.py: keep the code that teaches (phi-1, section 2.1).

phi-1's first data idea: a strong LLM labels the "educational value for a student whose goal is to
learn basic coding concepts" of ~100k code files; a random forest on a pretrained model's embeddings
of those files learns the labels; the forest then scores the whole 35B-token pool and only the best
~6B tokens are kept. Three steps here, each resumable:

    python llm.py serve --port 8080 &                  # a local teacher (or any OpenAI-compatible endpoint)
    python filter.py annotate --source DIR --n 1000 --out data/annotations.jsonl
    python filter.py train --annotations data/annotations.jsonl --out data/filter
    python filter.py keep --source DIR --forest data/filter --out data/filter
    python filter.py train-and-keep --source DIR --annotations data/annotations.jsonl --out data/filter
    python prepare.py --source data/filter/kept.jsonl --out data/filtered   # kept code -> token bins

annotate  the teacher judges a sample of --n documents and the anchor files: annotate.py says how (by
          default teacher_score = P(high) from the logprobs of a one-token answer, and labels by rank).
train     embeds the labeled texts and fits the forest on a split; writes OUT/forest.npz and
          OUT/metrics.json: held-out accuracy, precision, recall, F1, confusion matrix and AUC, the same
          for always answering the majority label, and whether any of it means something (signal_checks:
          the teacher's and the forest's AUC on the anchor files, with 95% intervals, in words).
          Labels of one class are an error (a forest learns nothing from them), unless --allow-one-class.
          Features (--embed): ngram, hashed token uni+bigrams, no model needed; teacher, the teacher
          endpoint's /v1/embeddings; or PATH, the mean-pooled final hidden states of a pretrained Phi
          (model.mean_hidden_states), as the paper used a pretrained CodeGen's: a Hugging Face directory
          such as microsoft/phi-1 (hf://microsoft/phi-1 downloads it), or a train.py checkpoint.
keep      scores every document (OUT/scores.jsonl, resumable) and keeps the best until --keep-tokens
          (0.17, the paper's 6B of 35B) of all tokens, equal scores in an order drawn under --seed; or
          --threshold, or --keep-top documents. Writes OUT/kept.jsonl ({"text", "score", "source", "id"},
          what prepare.py reads), OUT/keep.json (documents and tokens kept per source, and the rule) and
          OUT/scores.svg (a histogram).

The random forest lives in forest.py, a lesson of its own (bootstrap, Gini, binned features,
level-wise vectorized growth); filter.py re-exports it:  from filter import RandomForest
"""

import argparse
import collections
import functools
import hashlib
import json
import os
import re
import sys

import numpy as np
from tqdm import tqdm

from anchors import anchor_check, auc_with_ci, signal_or_noise
from annotate import annotate, start_fresh_line
from forest import RandomForest
from llm import add_llm_args, embed
from prepare import (DEFAULT_SOURCE, MAX_BYTES, DownloadError, atomic_write, download, get_tokenizer, iter_documents,
                     iter_jsonl)

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
    from model import mean_hidden_states
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return mean_hidden_states(embedder(ckpt, device), texts, batch_size, max_tokens).numpy()


def teacher_features(texts, spec, batch_size=16):
    """The teacher endpoint's embeddings (/v1/embeddings; `python llm.py serve --embeddings` for the local one)."""
    rows = []
    for start in tqdm(range(0, len(texts), batch_size), desc=f"embedding at {spec['api_base']}", unit="batch", leave=False):
        rows += embed(texts[start:start + batch_size], spec["api_base"], spec["model"], api_key_env=spec["api_key_env"])
    return np.asarray(rows, np.float32).reshape(len(texts), -1)


def pretrained(location):
    """A local checkpoint or Hugging Face directory as it is; hf://OWNER/NAME[@REVISION] (e.g. hf://microsoft/phi-1)
    becomes the cache directory of its config.json and model.safetensors, downloaded once (prepare.download:
    resumable, $HF_TOKEN and $HF_ENDPOINT as for datasets)."""
    m = re.fullmatch(r"hf://([^/@]+/[^/@]+)(?:@([^/]+))?", location)
    if not m:
        return os.path.abspath(location)
    url = f"{os.environ.get('HF_ENDPOINT', 'https://huggingface.co').rstrip('/')}/{m[1]}/resolve/{m[2] or 'main'}/"
    try:
        return os.path.dirname([download(url + name) for name in ("config.json", "model.safetensors")][0])
    except DownloadError as e:
        raise SystemExit(f"filter.py: cannot download {location}: {e}\nOffline, give --embed a local copy "
                         f"(a directory with config.json and model.safetensors), or --embed ngram.")


def feature_spec(args, max_chars):
    """What `--embed` asks for, as stored with the forest so that keep embeds exactly as train did."""
    spec = {"embed": args.embed, "max_chars": max_chars}
    if args.embed == "ngram":
        return {**spec, "dim": args.dim}
    if args.embed == "teacher":
        return {**spec, "api_base": args.api_base, "model": args.model, "api_key_env": args.api_key_env}
    if args.embed == "model" and not args.ckpt:
        raise SystemExit("filter.py: --embed model needs --ckpt (or give the checkpoint itself: --embed PATH)")
    ckpt = pretrained(args.ckpt if args.embed == "model" else args.embed)
    return {**spec, "embed": "model", "ckpt": ckpt, "batch_size": args.batch_size, "max_tokens": args.max_tokens}


def featurize(texts, spec, device=None):
    """The features `spec` (stored with the forest) describes, so training and scoring always agree."""
    texts = [t[:spec["max_chars"]] for t in texts]
    if spec["embed"] == "ngram":
        return ngram_features(texts, spec["dim"])
    if spec["embed"] == "teacher":
        return teacher_features(texts, spec)
    return model_features(texts, spec["ckpt"], device, spec["batch_size"], spec["max_tokens"])


# ----------------------------------------------------------------------------
# Train: the forest on the teacher's labels, judged on documents it never saw.

def load_annotations(path):
    """(labeled rows of an annotate file for the forest, one per document text, the last answer winning; the
    anchors' rows, asked with the same prompt: a check, never training data)."""
    skipped, rows, anchors = [], {}, {}
    for r in iter_jsonl(path, skipped):
        if isinstance(r.get("text"), str) and (r.get("anchor") or r.get("label") is not None):
            (anchors if r.get("anchor") else rows)[r["text"]] = r
    for text in anchors:  # a sampled document that is also an anchor (the stdlib as corpus) is left out
        rows.pop(text, None)
    prompts = collections.Counter(r.get("prompt") for r in rows.values())
    if len(prompts) > 1:
        raise SystemExit(f"{path} mixes labels of different prompts {dict(prompts)}; keep the rows of one")
    if len(rows) < 2:
        raise SystemExit(f"{path}: {len(rows)} labeled documents; the forest needs at least 2 (run annotate)")
    anchors = [a for a in anchors.values() if a.get("prompt") in prompts]
    return sorted(rows.values(), key=lambda r: r.get("key", "")), anchors  # answers arrive in any order; the split must not


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
    """Fit on a random (1 - test_fraction) of the annotations; report on the rest and on the anchors; save the forest."""
    rows, anchors = load_annotations(args.annotations)
    y = np.array([r["label"] for r in rows])
    labels = np.unique(y)
    if len(labels) == 1 and not args.allow_one_class:
        raise SystemExit(f"filter.py train: all {len(rows)} labels in {args.annotations} are {labels[0]!r}: a forest "
                         f"learns nothing from one class, and would keep everything or nothing. Annotate with "
                         f"--method score (labels by rank: two classes), use a stronger teacher, or pass "
                         f"--allow-one-class to keep everything and say so.")
    spec = feature_spec(args, max(len(r["text"]) for r in rows))
    X = featurize([r["text"] for r in rows], spec, args.device)
    order = np.random.default_rng(args.seed).permutation(len(rows))
    n_test = min(len(rows) - 1, max(1, round(args.test_fraction * len(rows))))
    test, fit_on = order[:n_test], order[n_test:]
    forest = RandomForest(args.trees, args.max_depth, args.max_features, args.min_samples_leaf, args.seed)
    forest.fit(X[fit_on], y[fit_on])
    majority = collections.Counter(y[fit_on].tolist()).most_common(1)[0][0]
    metrics = {**classification_metrics(y[test], forest.predict(X[test]), labels),
               "train_documents": len(fit_on), "test_documents": len(test), "majority_label": str(majority)}
    baseline = classification_metrics(y[test], np.full(len(test), majority), labels)
    metrics.update({f"baseline_{k}": baseline[k] for k in ("accuracy", "precision", "recall", "f1")})
    metrics["embed"] = {k: v for k, v in spec.items() if k != "api_key_env"}
    metrics["one_class"] = str(labels[0]) if len(labels) == 1 else None
    metrics.update(signal_checks(forest, X[test], y[test], anchors, spec, args.device))
    os.makedirs(args.out, exist_ok=True)
    forest.save(os.path.join(args.out, "forest.npz"), features=spec, annotations=os.path.abspath(args.annotations))
    with atomic_write(os.path.join(args.out, "metrics.json")) as f:
        json.dump(metrics, f, indent=1)
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}))
    for line in metrics["verdict"]:
        print(line, file=sys.stderr)
    return forest


def signal_checks(forest, X_test, y_test, anchors, spec, device):
    """Does anything here mean something? Three AUCs with bootstrap intervals, and what they say in words:
    the teacher's score on the anchors (does the teacher tell a lesson from a table?), the forest on the
    held-out annotations (did it learn the labels?) and the forest on the anchors (does the whole filter
    prefer lessons?)."""
    out = {"teacher_anchor_auc": anchor_check(anchors), "forest_auc": None, "forest_anchor_auc": None}
    if len(forest.classes_) > 1 and forest.classes_.dtype.kind not in "iuf":  # binary high/low labels
        p = educational_score(forest, X_test)
        out["forest_auc"] = auc_with_ci(p[y_test == "high"], p[y_test != "high"])
    lesson = [a["text"] for a in anchors if a["anchor"] == "lesson"]
    data = [a["text"] for a in anchors if a["anchor"] == "data"]
    if lesson and data:
        p = educational_score(forest, featurize(lesson + data, spec, device))
        out["forest_anchor_auc"] = auc_with_ci(p[:len(lesson)], p[len(lesson):])
    verdict = [signal_or_noise("The teacher's score on the anchor files (lesson-like above data-like?)",
                               out["teacher_anchor_auc"]),
               signal_or_noise("The forest on held-out annotations (does it predict the labels?)", out["forest_auc"]),
               signal_or_noise("The forest on the anchor files (does the filter prefer lessons?)",
                               out["forest_anchor_auc"])]
    verdict.append(conclusion(out["teacher_anchor_auc"], out["forest_anchor_auc"]))
    out["verdict"] = [v for v in verdict if v]
    return out


def conclusion(teacher, forest):
    """What the two anchor checks say together, in one sentence that claims no more than their intervals."""
    better = lambda check: bool(check) and check["ci95"][0] > 0.5
    if not teacher:
        return None
    if better(teacher):
        if not forest:
            return "So the teacher's labels carry signal at this scale."
        return ("So the teacher's labels carry signal at this scale" +
                (", and the filter prefers lesson-like files." if better(forest) else
                 "; the forest does not carry it over to the anchor files (too few annotations, or the features)."))
    if better(forest):
        return ("So the teacher's labels are indistinguishable from noise at this scale, yet the forest fit on them "
                "ranks the anchor files better than chance: the kept code leans to lesson-like files by this "
                "check, on evidence too thin to credit to the teacher's judgement.")
    return "So the teacher's labels are noise at this scale, and the filter keeps a near-random subset of the corpus."


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


def ranked(scores, seed):
    """Document keys, best score first; equal scores in an order drawn at random under `seed` (a hash of the
    seed and the document, so the same whatever order the documents were scored in), not by name."""
    tie = lambda k: hashlib.blake2b(f"{seed}\n{k[0]}\n{k[1]}".encode(), digest_size=8).digest()
    return sorted(scores, key=lambda k: (-scores[k][0], tie(k)))


def choose(scores, forest, args):
    """(kept keys, the lowest kept score, the rule in words). By default a token budget, as the paper kept about
    6B of its 35B tokens (section 2.1): the best documents until --keep-tokens of all tokens are kept. A forest
    fit on one class (--allow-one-class) cannot rank anything: then everything is kept, and said so."""
    order = ranked(scores, args.seed)
    if len(forest.classes_) == 1:
        return set(order), 0.0, f"kept everything: one class ({forest.classes_[0]!r}) in the labels"
    if args.threshold is not None:
        return {k for k in order if scores[k][0] >= args.threshold}, args.threshold, f"score >= {args.threshold}"
    if args.keep_top is not None:
        kept = order[:round(args.keep_top * len(order))]
        rule = f"keep-top {args.keep_top} of documents"
    else:
        budget, used, kept = args.keep_tokens * sum(t for _, t in scores.values()), 0, []
        for k in order:
            if used >= budget:
                break
            kept.append(k)
            used += scores[k][1]
        rule = f"keep-tokens {args.keep_tokens}: the best documents until that share of tokens"
    return set(kept), (scores[kept[-1]][0] if kept else 1.0), rule


def keep(args, forest=None):
    """Score, choose, and write OUT/kept.jsonl, OUT/keep.json and OUT/scores.svg."""
    if forest is None:
        forest = RandomForest.load(args.forest if args.forest.endswith(".npz") else os.path.join(args.forest, "forest.npz"))
    os.makedirs(args.out, exist_ok=True)
    scores, skipped = score_documents(args, forest)
    kept, cut, rule = choose(scores, forest, args)
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
    report = {"rule": rule, "cut": round(cut, 6), **{k: total[k] for k in ("documents", "tokens", "kept_documents", "kept_tokens")},
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
        p.add_argument("--embed", default="ngram", metavar="ngram|teacher|PATH",
                       help="features: hashed token n-grams (no model); the teacher endpoint's embeddings; or a "
                            "pretrained Phi's mean hidden state: a HF directory (e.g. a download of microsoft/phi-1), "
                            "hf://OWNER/NAME to download one, or a train.py checkpoint (default: %(default)s)")
        p.add_argument("--ckpt", help="with --embed model: the checkpoint (the same as --embed PATH)")
        p.add_argument("--dim", type=int, default=1024, help="n-gram hash buckets (default: %(default)s)")
        p.add_argument("--max-tokens", type=int, default=512, help="tokens the model reads per document (default: %(default)s)")
        p.add_argument("--batch-size", type=int, default=16, help="documents per model forward (default: %(default)s)")
        p.add_argument("--trees", type=int, default=100)
        p.add_argument("--max-depth", type=int)
        p.add_argument("--max-features", default="sqrt", type=max_features,
                       help="features tried per node: sqrt, log2, all, a count or a fraction (default: %(default)s)")
        p.add_argument("--min-samples-leaf", type=int, default=1)
        p.add_argument("--test-fraction", type=float, default=0.2, help="annotations held out (default: %(default)s)")
        p.add_argument("--allow-one-class", action="store_true",
                       help="labels of one class: fit anyway and keep everything (else an error)")
        p.add_argument("--seed", type=int, default=0, help="the split, the forest and the order of ties (default: 0)")
        add_llm_args(p)  # for --embed teacher

    def keeper(p, forest=True):
        if forest:
            p.add_argument("--forest", required=True, help="train's --out directory, or a forest .npz")
        rule = p.add_mutually_exclusive_group()
        rule.add_argument("--keep-tokens", type=float, default=0.17,
                          help="keep the best documents until this share of all tokens (default: %(default)s, the "
                               "paper's 6B of 35B)")
        rule.add_argument("--threshold", type=float, help="instead, keep every document whose score >= this")
        rule.add_argument("--keep-top", type=float, help="instead, keep this fraction of documents, best first")
        p.add_argument("--batch-docs", type=int, default=1024, help="documents scored at a time (default: %(default)s)")

    a = sub.add_parser("annotate", help="the teacher labels a sample of documents (cached, resumable)")
    sources(a)
    a.add_argument("--n", type=int, required=True, help="documents in the sample")
    a.add_argument("--out", required=True, help="annotations .jsonl (appended to; it is the cache)")
    a.add_argument("--method", choices=("score", "answer"), default="score",
                   help="score: P(high) from the logprobs of a one-token answer, both option orders, labels by rank; "
                        "answer: the label parsed from the teacher's answer, as in the paper (default: %(default)s)")
    a.add_argument("--high-fraction", type=float, default=0.5,
                   help="--method score: the share of the sample labeled high, best scores first (default: %(default)s)")
    a.add_argument("--anchors", choices=("test", "all", "none"), default="test",
                   help="anchor files (anchors.py) also judged, to measure the teacher (default: %(default)s)")
    a.add_argument("--scale", choices=("binary", "additive"), default="binary",
                   help="--method answer: low/high (paper) or 0-5 (FineWeb-Edu)")
    a.add_argument("--max-chars", type=int, default=8000, help="characters of each document shown (default: %(default)s)")
    a.add_argument("--seed", type=int, default=0, help="which sample, and the order of tied scores (default: %(default)s)")
    a.add_argument("--workers", type=int, help="requests at once (default: 1 for the local teacher, whose one server "
                   "then finds each document's prefix cached for its second request; else 4)")
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
    k.add_argument("--seed", type=int, default=0, help="the order of equal scores (default: %(default)s)")
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
