"""
anchors.py: files whose educational value is not in doubt, to measure whether a teacher's score means anything.

filter.py asks the teacher about each anchor exactly as about the sampled corpus, and reports the AUC of its
teacher_score on them: the chance that a lesson-like anchor scores above a data-like one (0.5: a coin toss,
1.0: a perfect ranking). They are a check, never training data: the forest does not see them.

    from anchors import ANCHORS, load_anchors
    rows = load_anchors("test")     # [{"path", "kind", "text"}], kind "lesson" or "data"

They are this Python's standard library (prepare.DEFAULT_SOURCE, the cpu-scale corpus), so every machine has
them whatever its corpus. Each is clear-cut in its first 1,000 characters, all that the cpu-scale teacher
reads (run.sh's ANNOTATE_CHARS):
- lesson: a small, self-contained program or module that explains itself: the turtle demos written as
  beginners' examples ("suitable as a beginner's programming example", Towers of Hanoi, sorting
  animations), and stdlib modules that open with a tutorial-like docstring or short documented functions
  (heapq's explanation of heaps, bisect, colorsys, copy's shallow-vs-deep essay, statistics' tables).
- data: generated tables (the gencodec.py charmaps encodings/cp*.py, token.py, keyword.py, stringprep.py,
  html/entities.py, pydoc_data/topics.py), lists of constants (tkinter/constants.py, NodeFilter, wintypes),
  and pure re-exports that teach nothing on their own (collections/abc.py, xml/etree/cElementTree.py,
  dbm/ndbm.py, asyncio/__init__.py, sqlite3/__init__.py: a licence, then `from ... import *`).
Several turtle demos or charmaps look alike; that is on purpose (they are what a corpus holds), and a reason
to read the AUC with its confidence interval.

`split` keeps the prompt honest: the prompts of filter.py were tried on the "tune" anchors only, and the
"test" anchors, which no prompt was chosen on, give the figure that the pipeline reports (bench/bench_annotate.py).
The split was fixed before any prompt was scored, alternating through each group.
"""

import os

import numpy as np

from prepare import DEFAULT_SOURCE

ANCHORS = [  # (path under the stdlib, kind, split)
    ("turtledemo/yinyang.py", "lesson", "tune"), ("turtledemo/peace.py", "lesson", "test"),
    ("turtledemo/minimal_hanoi.py", "lesson", "test"), ("turtledemo/tree.py", "lesson", "tune"),
    ("turtledemo/chaos.py", "lesson", "test"), ("turtledemo/sorting_animate.py", "lesson", "tune"),
    ("turtledemo/fractalcurves.py", "lesson", "test"), ("turtledemo/nim.py", "lesson", "test"),
    ("turtledemo/lindenmayer.py", "lesson", "tune"), ("turtledemo/penrose.py", "lesson", "test"),
    ("turtledemo/planet_and_moon.py", "lesson", "test"), ("turtledemo/paint.py", "lesson", "tune"),
    ("turtledemo/forest.py", "lesson", "test"), ("heapq.py", "lesson", "tune"), ("bisect.py", "lesson", "test"),
    ("colorsys.py", "lesson", "test"), ("sched.py", "lesson", "tune"), ("fnmatch.py", "lesson", "test"),
    ("statistics.py", "lesson", "test"), ("copy.py", "lesson", "tune"),
    ("encodings/cp1252.py", "data", "tune"), ("encodings/cp437.py", "data", "test"),
    ("encodings/mac_roman.py", "data", "test"), ("encodings/koi8_r.py", "data", "tune"),
    ("encodings/aliases.py", "data", "test"), ("token.py", "data", "tune"), ("keyword.py", "data", "test"),
    ("stringprep.py", "data", "test"), ("html/entities.py", "data", "tune"), ("tkinter/constants.py", "data", "test"),
    ("pydoc_data/topics.py", "data", "test"), ("xml/etree/cElementTree.py", "data", "tune"),
    ("asyncio/__init__.py", "data", "test"), ("collections/abc.py", "data", "test"), ("dbm/ndbm.py", "data", "test"),
    ("encodings/latin_1.py", "data", "tune"), ("_compat_pickle.py", "data", "test"),
    ("xml/dom/NodeFilter.py", "data", "tune"), ("sqlite3/__init__.py", "data", "test"),
    ("ctypes/wintypes.py", "data", "tune"),
]


def load_anchors(split="test", stdlib=DEFAULT_SOURCE):
    """[{"path", "kind", "text"}] of the anchors of `split` ("tune", "test" or "all") that this Python has
    (distributions leave some out, e.g. tkinter), and the paths it lacks."""
    rows, missing = [], []
    for path, kind, s in ANCHORS:
        if split not in ("all", s):
            continue
        try:
            with open(os.path.join(stdlib, path), encoding="utf-8") as f:
                rows.append({"path": path, "kind": kind, "text": f.read()})
        except (OSError, UnicodeDecodeError):
            missing.append(path)
    return rows, missing


def auc(pos, neg):
    """P(a positive scores above a negative), ties counting one half (the Mann-Whitney U statistic / n m)."""
    pos, neg = np.asarray(pos, np.float64)[:, None], np.asarray(neg, np.float64)[None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


def auc_with_ci(pos, neg, seed=0, n_boot=2000):
    """{"auc", "ci95", "positives", "negatives"}: the AUC and a bootstrap 95% interval (each class resampled
    on its own, so that every draw keeps both)."""
    if not len(pos) or not len(neg):
        return None
    rng = np.random.default_rng(seed)
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    boot = [auc(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))) for _ in range(n_boot)]
    return {"auc": round(auc(pos, neg), 4), "ci95": [round(float(q), 4) for q in np.quantile(boot, [0.025, 0.975])],
            "positives": len(pos), "negatives": len(neg)}


def anchor_check(rows):
    """The AUC of teacher_score on the anchors (anchors.py): lesson-like files should score above data-like ones."""
    scored = [r for r in rows if r.get("anchor") and r.get("teacher_score") is not None]
    return auc_with_ci([r["teacher_score"] for r in scored if r["anchor"] == "lesson"],
                       [r["teacher_score"] for r in scored if r["anchor"] == "data"])


def signal_or_noise(what, check):
    """One plain sentence on an AUC and its interval: a signal only when the whole interval is above 0.5."""
    if not check:
        return f"{what}: not measured."
    a, (lo, hi) = check["auc"], check["ci95"]
    if lo > 0.5:
        return f"{what}: AUC {a:.2f} (95% CI {lo:.2f}-{hi:.2f}), better than chance."
    return f"{what}: AUC {a:.2f} (95% CI {lo:.2f}-{hi:.2f}), not distinguishable from chance (0.5)."
