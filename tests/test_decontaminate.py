"""decontaminate.py: planted near copies of benchmark problems are found (renamed, re-documented, inside markdown),
unrelated code is left alone, and the CLI writes the kept rows and the report. Offline: ../shared/data."""
import ast
import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, SHARED
from decontaminate import checkpoint_embedder, decontaminate, edit_distance

DATA = SHARED / "data"
pytestmark = pytest.mark.skipif(not (DATA / "HumanEval.jsonl.gz").exists(), reason="needs ../shared/data")


class _Rename(ast.NodeTransformer):
    """Rename every variable, argument and function: what a paraphrasing teacher model might do."""

    def __init__(self):
        self.names = {}

    def _new(self, name):
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node):
        if node.id not in dir(__builtins__) and node.id not in ("List", "Tuple", "Optional", "Any"):
            node.id = self._new(node.id)
        return node

    def visit_arg(self, node):
        node.arg = self._new(node.arg)
        node.annotation = self.visit(node.annotation) if node.annotation else None
        return node

    def visit_FunctionDef(self, node):
        node.name = self._new(node.name)
        node.body[0] = ast.Expr(ast.Constant("A helper from my lecture notes on lists of numbers."))
        return self.generic_visit(node)


UNRELATED = [
    "def mean(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total / len(xs) if xs else 0.0\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n"
    "    def push(self, x):\n        self.items.append(x)\n\n"
    "    def pop(self):\n        if not self.items:\n            raise IndexError('empty')\n"
    "        return self.items.pop()\n",
    "def bfs(graph, start):\n    seen, queue = {start}, [start]\n    while queue:\n        node = queue.pop(0)\n"
    "        for nxt in graph.get(node, ()):\n            if nxt not in seen:\n                seen.add(nxt)\n"
    "                queue.append(nxt)\n    return seen\n",
    "import re\n\ndef slugify(title: str) -> str:\n    words = re.findall(r'[a-z0-9]+', title.lower())\n"
    "    return '-'.join(words)[:60]\n",
    "def matmul(a, b):\n    n, m, p = len(a), len(b), len(b[0])\n    return [[sum(a[i][k] * b[k][j] for k in range(m))"
    " for j in range(p)] for i in range(n)]\n",
]


def _planted(problem):
    tree = ast.parse(problem["prompt"] + problem["canonical_solution"])
    code = ast.unparse(_Rename().visit(tree))
    return f"# Lists and closeness\n\nLet us study pairs of numbers.\n\n```python\n{code}\n```\n\nThat is all.\n"


def test_decontamination_flags_a_planted_near_copy(humaneval):
    target = humaneval[0]
    planted = _planted(target)
    assert "has_close_elements" not in planted and "threshold" not in planted  # really renamed
    rows = [{"id": f"u{i}", "text": t} for i, t in enumerate(UNRELATED)] + [{"id": "planted", "text": planted}]
    kept, report = decontaminate(rows, data_dir=DATA, tau=0.9)
    assert [r["id"] for r in kept] == [f"u{i}" for i in range(len(UNRELATED))]
    hits = [f for f in report["flagged"] if f["id"] == "planted"]
    assert any(f["method"] == "ast" and f["task_id"] == target["task_id"] and f["score"] >= 0.9 for f in hits)
    assert report["removed"] == 1 and report["kept"] == len(UNRELATED)


def test_decontamination_leaves_unrelated_code_alone():
    # Every top-level function of a few standard-library modules: real code, none of it a benchmark problem.
    import heapq
    import textwrap
    import json.decoder
    rows = []
    for module in (heapq, textwrap, json.decoder, shutil):
        source = open(module.__file__).read()
        lines = source.splitlines()
        rows += [{"text": "\n".join(lines[n.lineno - 1:n.end_lineno])} for n in ast.parse(source).body
                 if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert len(rows) > 50
    t0 = time.monotonic()
    kept, report = decontaminate(rows, data_dir=DATA, tau=0.9)
    assert report["flagged"] == [] and len(kept) == len(rows)
    assert time.monotonic() - t0 < 60


def test_decontamination_flags_ngram_copies(mbpp):
    p = mbpp[5]
    rows = [{"text": "Here is an exercise.\n" + p["prompt"] + p["canonical_solution"]}, {"text": UNRELATED[0]}]
    kept, report = decontaminate(rows, tasks=("mbpp",), data_dir=DATA)
    assert [f["method"] for f in report["flagged"] if f["row"] == 0].count("ngram") == 1
    assert kept == rows[1:]


def test_decontamination_with_embeddings(humaneval, tmp_path, one_thread):
    torch = one_thread
    from model import Phi, PhiConfig
    torch.manual_seed(0)
    Phi(PhiConfig.preset("tiny", n_layer=2)).save_pretrained(tmp_path / "tiny")
    embed = checkpoint_embedder(tmp_path / "tiny", max_tokens=128)
    p = humaneval[7]
    copy = p["prompt"] + p["canonical_solution"] + "\n" + p["test"]  # the text decontaminate embeds
    rows = [{"text": copy}, {"text": UNRELATED[2]}]
    kept, report = decontaminate(rows, tasks=("humaneval",), data_dir=DATA, embed_fn=embed, l2_threshold=1e-3,
                                 ngram=10_000, tau=2.0)  # n-grams and ASTs off: this test is about embeddings
    assert [f["method"] for f in report["flagged"]] == ["embedding"] and report["flagged"][0]["row"] == 0
    assert report["flagged"][0]["task_id"] == p["task_id"] and kept == rows[1:]


def test_decontaminate_cli(tmp_path, humaneval):
    data = tmp_path / "train.jsonl"
    rows = [{"text": t} for t in UNRELATED] + [{"text": _planted(humaneval[0])}, {"no_text": 1}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    subprocess.run([sys.executable, "decontaminate.py", str(data), "--out", str(tmp_path / "clean.jsonl"),
                    "--data-dir", str(DATA)], cwd=ROOT, check=True, capture_output=True)
    clean = [json.loads(line) for line in (tmp_path / "clean.jsonl").read_text().splitlines()]
    report = json.loads((tmp_path / "clean.contamination.json").read_text())  # the default --report
    assert len(clean) == len(UNRELATED) + 1 and report["rows_without_text"] == 1 and report["removed"] == 1


def test_edit_distance_matches_a_plain_dp():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = rng.integers(0, 4, rng.integers(0, 12)), rng.integers(0, 4, rng.integers(0, 12))
        d = list(range(len(b) + 1))
        for i in range(1, len(a) + 1):
            prev, d[0] = d[:], i
            for j in range(1, len(b) + 1):
                d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
        assert edit_distance(a, b) == d[-1]
