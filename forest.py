"""
forest.py: a random forest classifier in NumPy (Breiman, 2001), the one filter.py trains (phi-1, section 2.1).

    from forest import RandomForest             # also importable as: from filter import RandomForest
    forest = RandomForest(n_estimators=100, max_features="sqrt", seed=0).fit(X, y)
    proba = forest.predict_proba(X_new)         # (n, len(forest.classes_)), the mean of the trees' leaf shares
    forest.predict(X_new), forest.feature_importances_
    forest.save("forest.npz"); forest = RandomForest.load("forest.npz")

    python -m pytest -q tests/test_filter.py    # checked against brute force and scikit-learn
    python bench/bench_forest.py                # side by side with scikit-learn's RandomForestClassifier

The model is the textbook one: each tree fits a bootstrap sample (n draws with replacement), each node
takes the split with the lowest weighted Gini impurity among a fresh random subset of max_features
features, and trees grow to full depth by default. What is particular here is how it runs fast without
any Python loop over samples or nodes:

- Binned features. Each feature is binned once into <= 256 quantile bins (uint8 codes), as LightGBM and
  scikit-learn's HistGradientBoosting do. A split "bin <= b" is the split "x <= edges[b]" on the raw
  value, so the fitted forest thresholds raw numbers and predicts without the bins.
- Level-wise, vectorized growth. Every node of a level, of several trees at once, grows in one round of
  whole-array operations. A (node, sampled feature) pair is a "group"; each bootstrap sample of a node is
  an "entry" of each of the node's groups, weighted by its number of draws. With entries ordered by
  (group, bin), the left side of "bin <= b" is a prefix of its group, so running sums score every
  candidate split of every group at once. Two ways to that order: a histogram while groups are few
  (_dense_sums, the first levels), one sort of packed integer keys once they are many (_sorted_sums).
- Gini as a sum of squares. A split's quality is  sum_c L_c^2/|L| + sum_c R_c^2/|R|  (L_c, R_c: weight
  of class c on each side): the parent's weight minus the children's weighted Gini impurity, so higher
  is better. Both ways return, per candidate, |L|, sum_c L_c^2 and sum_c T_c L_c (T_c: the node's class
  weights), from which sum_c R_c^2 = sum_c (T_c - L_c)^2 follows.
- Flat tree arrays. The fitted forest is five arrays over all nodes, each tree's nodes contiguous:
  feature (-1 at a leaf), threshold, left child (the right child is left + 1), value (class shares) and
  tree_start. Prediction walks all (tree, sample) pairs down together by gathers (np.take), and saving
  is one .npz of plain arrays that loads with allow_pickle=False.
"""

import json

import numpy as np

from prepare import atomic_write

MAX_BINS = 256
DENSE = 2.0  # histogram when (groups x bins x classes) <= DENSE x entries, else sort the entries
ENTRIES = 150_000  # per level of one grow_trees call (trees grow together until then): amortizes Python's overhead


def bin_features(X, max_bins=MAX_BINS):
    """Quantile-bin each feature into <= max_bins uint8 codes. Returns the codes and the (d, max_bins - 1)
    float32 thresholds, padded with +inf: midpoints between neighbouring distinct values where there are
    few, else between quantiles. code(x) = number of thresholds below x, so code <= b exactly when
    x <= edges[b]: a tree split on codes is a split on raw values."""
    Xb = np.empty(X.shape, np.uint8)
    edges = np.full((X.shape[1], max_bins - 1), np.inf, np.float32)
    for j, col in enumerate(np.ascontiguousarray(X.T)):
        order = np.argsort(col)
        xs = col[order]
        distinct = xs[np.r_[True, xs[1:] != xs[:-1]]]
        if len(distinct) <= max_bins:
            e = (distinct[:-1].astype(np.float64) + distinct[1:]) / 2
        else:
            k = np.arange(1, max_bins) * len(xs) // max_bins
            e = (xs[k - 1].astype(np.float64) + xs[k]) / 2
        e = np.unique(e.astype(np.float32))  # float32 rounding can merge neighbours
        edges[j, :len(e)] = e
        Xb[order, j] = np.searchsorted(e, xs)  # sorted keys: far faster than searching in column order
    return Xb, edges


def sample_features(rng, k, d, m):
    """k rows of m distinct features out of d (Floyd's algorithm, vectorized over the rows)."""
    F = np.empty((k, m), np.int64)
    for i, j in enumerate(range(d - m, d)):
        r = rng.integers(0, j + 1, k)
        F[:, i] = np.where((F[:, :i] == r[:, None]).any(1), j, r)
    return F


def _dense_sums(b, node, y, w, m, totals):
    """Histogram (group, class, bin); running sums over bins give every split's left side."""
    K, C = totals.shape
    G = K * m
    idx = ((node * m * C + y) * MAX_BINS)[:, None] + np.arange(m) * (C * MAX_BINS) + b
    H = np.bincount(idx.ravel(), np.broadcast_to(w[:, None], b.shape).ravel(), G * C * MAX_BINS)
    L = np.cumsum(H.reshape(G, C, MAX_BINS), axis=2)                 # left class weights of "bin <= b"
    T = np.repeat(totals, m, axis=0).astype(np.float64)
    group = np.repeat(np.arange(G), MAX_BINS)
    return (group, np.tile(np.arange(MAX_BINS), G), L.sum(1).ravel(),
            np.einsum("gcb,gcb->gb", L, L).ravel(), np.einsum("gc,gcb->gb", T, L).ravel())


def _sorted_sums(b, node, y, w, m, totals):
    """Sort the entries by (group, bin) and take running sums over all of them at once.

    sum_c L_c^2 needs no per-class arrays: an entry of class y and weight w joining the left side,
    where its class then has weight own (itself included), adds own^2 - (own - w)^2 = (2 own - w) w.
    A running sum over the whole array also counts earlier groups; every group holds all of its
    node's samples, so what earlier groups add is known from the node totals and subtracted.
    """
    K, C = totals.shape
    yb, wb = max(1, (C - 1).bit_length()), int(w.max()).bit_length()
    shift = wb + yb  # key = group | bin | weight | class, so sorting orders by (group, bin)
    dt = np.int32 if (K * m - 1).bit_length() + 8 + shift <= 31 else np.int64  # int32 sorts ~3x faster
    key = np.left_shift(b, shift, dtype=dt)
    key += ((node * m) << (8 + shift) | w << yb | y).astype(dt)[:, None] + (np.arange(m, dtype=dt) << (8 + shift))
    key = key.ravel()
    key.sort()
    yk, wk, cell = key & ((1 << yb) - 1), (key >> yb) & ((1 << wb) - 1), key >> shift
    group_class = (cell >> 8) * C + yk
    own = np.empty(len(key), np.int64)
    for c in range(C):                                                 # running weight of each entry's class...
        at = np.flatnonzero(yk == c)
        own[at] = np.cumsum(wk[at])
    T = np.repeat(totals, m, axis=0)                                   # (groups, C): a group holds its node's samples
    own -= (np.cumsum(T, axis=0) - T).ravel()[group_class]             # ... within its group
    last = np.empty(len(key), bool)
    np.not_equal(cell[1:], cell[:-1], out=last[:-1])
    last[-1] = True
    end = np.flatnonzero(last)                                         # last entry of each (group, bin)
    group = cell[end] >> 8
    earlier = lambda per_node: (np.cumsum(np.repeat(per_node, m)) - np.repeat(per_node, m))[group]
    t2 = (totals * totals).sum(1)
    lw = np.cumsum(wk)[end] - earlier(totals.sum(1))
    sq = np.cumsum((2 * own - wk) * wk)[end] - earlier(t2)
    tl = np.cumsum(T.ravel()[group_class] * wk)[end] - earlier(t2)
    return group, cell[end] & 255, lw, sq, tl


def best_splits(Xb, sample, node, y, w, F, totals, min_leaf):
    """Best split of each of K nodes among its features F (K, m): (feature or -1, bin, Gini gain).

    sample, node, y, w: one entry per (bootstrap sample, node), w its number of draws; totals (K, C)
    the class weights of each node.
    """
    K, m = F.shape
    b = np.take(Xb.ravel(), (sample * Xb.shape[1])[:, None] + F[node])    # (entries, m) bins
    if K * m * totals.shape[1] * MAX_BINS <= DENSE * b.size:
        group, bins, lw, sq, tl = _dense_sums(b, node, y, w, m, totals)
    else:
        group, bins, lw, sq, tl = _sorted_sums(b, node, y, w, m, totals)
    at = group // m
    tw, t2 = totals.sum(1)[at], (totals * totals).sum(1)[at]
    rw = tw - lw
    ok = (lw >= min_leaf) & (rw >= min_leaf)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(ok, sq / lw + (t2 - 2 * tl + sq) / rw, -np.inf)  # sum R_c^2 = sum (T_c - L_c)^2
    # the first best candidate of each node (candidates are ordered by node)
    start = np.flatnonzero(np.r_[True, at[1:] != at[:-1]])
    best = np.repeat(np.maximum.reduceat(score, start), np.diff(np.r_[start, len(at)]))
    win = np.flatnonzero((score == best) & ok)
    first = np.ones(len(win), bool)
    first[1:] = at[win][1:] != at[win][:-1]
    win = win[first]
    feature, threshold, gain = np.full(K, -1), np.zeros(K, np.int64), np.zeros(K)
    feature[at[win]] = F[at[win], group[win] % m]
    threshold[at[win]] = bins[win]
    gain[at[win]] = score[win] - t2[win] / tw[win]  # weighted Gini decrease, for feature importances
    return feature, threshold, gain


def grow_trees(Xb, y, n_classes, draws, max_depth, min_leaf, m, rng):
    """Grow one tree per row of draws (T, n) (bootstrap counts), all at once, level by level.

    Returns the nodes in level order as (tree, feature (-1: leaf), bin, left child (right = left + 1),
    class weights, Gini decrease). A node is a leaf when it is pure, too small, at max_depth, or when
    no valid split turns up in d/m draws of features (scikit-learn, too, draws on past constant ones).
    """
    d = Xb.shape[1]
    tree, sample = np.nonzero(draws)
    w, y = draws[tree, sample].astype(np.int64), y[sample].astype(np.int64)
    node, trees = tree.copy(), np.arange(len(draws))  # entries' open node; each open node's tree
    out, first_id, depth = [], 0, 0
    while len(trees):
        K = len(trees)
        counts = np.bincount(node * n_classes + y, w, K * n_classes).reshape(K, n_classes).astype(np.int64)
        total = counts.sum(1)
        feature, threshold, gain = np.full(K, -1), np.zeros(K, np.int64), np.zeros(K)
        todo = np.flatnonzero((counts.max(1) < total) & (total >= 2 * min_leaf) & (depth < max_depth))
        for _ in range(-(-d // m)):
            if not len(todo):
                break
            rank = np.full(K, -1)
            rank[todo] = np.arange(len(todo))
            active = rank[node] >= 0
            f, t, g = best_splits(Xb, sample[active], rank[node[active]], y[active], w[active],
                                  sample_features(rng, len(todo), d, m), counts[todo], min_leaf)
            feature[todo], threshold[todo], gain[todo] = f, t, g
            todo = todo[f < 0]
        split = feature >= 0
        rank = np.cumsum(split) - 1
        keep = split[node]  # entries of leaves are done
        sample, w, y, node = sample[keep], w[keep], y[keep], node[keep]
        x = Xb[sample, feature[node]]
        right = x > threshold[node]
        # Any bin between the left side's highest and the right side's lowest splits the same way;
        # take the middle one (scikit-learn likewise puts its threshold halfway between two values).
        lowest_right = np.full(K, MAX_BINS - 1)
        np.minimum.at(lowest_right, node[right], x[right])
        threshold = np.where(split, (threshold + lowest_right - 1) // 2, 0)
        out.append((trees, feature, threshold, np.where(split, first_id + K + 2 * rank, -1), counts, gain))
        node = 2 * rank[node] + right
        first_id, trees, depth = first_id + K, np.repeat(trees[split], 2), depth + 1
    return [np.concatenate(a) for a in zip(*out)]


class RandomForest:
    """A random forest classifier in NumPy, with the interface of scikit-learn's.

        forest = RandomForest(n_estimators=100, max_features="sqrt", seed=0).fit(X, y)
        proba = forest.predict_proba(X_new)            # (n, len(forest.classes_))
        forest.predict(X_new), forest.feature_importances_
        forest.save("forest.npz"); forest = RandomForest.load("forest.npz")

    X is any (n, d) array of finite numbers (used as float32); y any labels (classes_ = sorted unique).
    max_features: "sqrt", "log2", an int, a fraction, or None (all). min_samples_leaf counts bootstrap
    draws. A fixed seed gives the same forest on every run.
    """

    def __init__(self, n_estimators=100, max_depth=None, max_features="sqrt", min_samples_leaf=1, seed=0):
        self.n_estimators, self.max_depth, self.max_features = n_estimators, max_depth, max_features
        self.min_samples_leaf, self.seed = min_samples_leaf, seed

    def _n_features_per_node(self, d):
        mf = self.max_features
        if mf is None:
            return d
        m = np.sqrt(d) if mf == "sqrt" else np.log2(d) if mf == "log2" else mf * d if isinstance(mf, float) else mf
        return min(d, max(1, int(m)))

    def fit(self, X, y):
        X, y = _check_X(X), np.asarray(y)
        if len(X) != len(y) or len(X) == 0:
            raise ValueError(f"X has {len(X)} rows and y {len(y)} labels; need the same number, at least 1")
        self.classes_, y = np.unique(y, return_inverse=True)
        n, d = X.shape
        m, C = self._n_features_per_node(d), len(self.classes_)
        Xb, edges = bin_features(X)
        rng = np.random.default_rng(self.seed)
        max_depth = np.inf if self.max_depth is None else self.max_depth
        per_call = max(1, int(ENTRIES / (0.632 * n * m)))  # trees grown together (a bootstrap holds 63% of the samples)
        parts, n_nodes = [], 0
        for t0 in range(0, self.n_estimators, per_call):
            draws = np.stack([np.bincount(rng.integers(0, n, n), minlength=n)
                              for _ in range(min(per_call, self.n_estimators - t0))])
            tree, feature, bins, left, counts, gain = grow_trees(Xb, y, C, draws, max_depth, self.min_samples_leaf, m, rng)
            parts.append((tree + t0, feature, bins, np.where(left >= 0, left + n_nodes, -1), counts, gain))
            n_nodes += len(tree)
        tree, feature, bins, left, counts, gain = [np.concatenate(a) for a in zip(*parts)]
        # Renumber so that each tree's nodes are contiguous (a stable sort keeps siblings adjacent).
        order = np.argsort(tree, kind="stable")
        new_id = np.empty_like(order)
        new_id[order] = np.arange(len(order))
        self.feature = feature[order].astype(np.int32)
        self.threshold = np.where(self.feature >= 0, edges[np.maximum(self.feature, 0), bins[order]], 0).astype(np.float32)
        self.left = np.where(left[order] >= 0, new_id[np.maximum(left[order], 0)], -1).astype(np.int32)
        self.value = (counts[order] / counts[order].sum(1, keepdims=True)).astype(np.float32)
        self.tree_start = np.searchsorted(tree[order], np.arange(self.n_estimators)).astype(np.int64)
        # Importance (scikit-learn's): each tree's share of its Gini decrease per feature, averaged over trees.
        per_tree = np.zeros((self.n_estimators, d))
        np.add.at(per_tree, (tree[order], np.maximum(self.feature, 0)), np.where(self.feature >= 0, gain[order], 0))
        per_tree /= np.maximum(per_tree.sum(1, keepdims=True), 1e-300)
        self.feature_importances_ = per_tree.mean(0) / max(per_tree.mean(0).sum(), 1e-300)
        return self

    def predict_proba(self, X, block=1 << 18):
        """Mean over trees of the class shares in the leaf each sample reaches.

        All (tree, sample) pairs of a block walk down together, one level per step, by gathers; a leaf
        points to itself and never sends anything right, so a finished pair waits in place until the
        next compaction. Pairs are ordered tree by tree, so a step reads few nodes' worth of memory.
        """
        X = _check_X(X)
        if X.shape[1] != len(self.feature_importances_):
            raise ValueError(f"X has {X.shape[1]} features; the forest was fit on {len(self.feature_importances_)}")
        leaf = self.feature < 0
        feature = np.where(leaf, 0, self.feature)
        threshold = np.where(leaf, np.inf, self.threshold).astype(np.float32)
        left = np.where(leaf, np.arange(len(leaf)), self.left).astype(np.intp)
        T, d = len(self.tree_start), X.shape[1]
        out = np.empty((len(X), len(self.classes_)))
        rows = max(1, block // T)
        for i in range(0, len(X), rows):
            Xf = X[i:i + rows].ravel()
            n = len(Xf) // d
            node, base = np.repeat(self.tree_start, n), np.tile(np.arange(n) * d, T)
            reached, pair = np.empty(T * n, np.intp), np.arange(T * n)
            while len(pair):
                for _ in range(4):
                    node = np.take(left, node) + (np.take(Xf, np.take(feature, node) + base) > np.take(threshold, node))
                done = np.take(leaf, node)
                reached[pair[done]] = node[done]
                walking = np.flatnonzero(~done)
                pair, node, base = np.take(pair, walking), np.take(node, walking), np.take(base, walking)
            out[i:i + n] = self.value[reached].reshape(T, n, -1).mean(0)
        return out

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]

    def save(self, path, **meta):
        """One .npz of plain arrays (np.load(..., allow_pickle=False) reads it); meta: JSON-able extras."""
        params = {k: getattr(self, k) for k in ("n_estimators", "max_depth", "max_features", "min_samples_leaf", "seed")}
        self.meta = meta
        with atomic_write(path, "wb") as f:
            np.savez(f, feature=self.feature, threshold=self.threshold, left=self.left, value=self.value,
                     tree_start=self.tree_start, feature_importances=self.feature_importances_, classes=self.classes_,
                     params=np.array(json.dumps(params)), meta=np.array(json.dumps(meta)))

    @classmethod
    def load(cls, path):
        """The forest saved at `path`, with .meta holding the extras passed to save()."""
        with np.load(path, allow_pickle=False) as z:
            forest = cls(**json.loads(str(z["params"])))
            for k in ("feature", "threshold", "left", "value", "tree_start"):
                setattr(forest, k, z[k])
            forest.feature_importances_ = z["feature_importances"]
            forest.classes_, forest.meta = z["classes"], json.loads(str(z["meta"]))
        return forest


def _check_X(X):
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (samples, features), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X holds NaN or infinite values; impute or drop them first")
    return X
