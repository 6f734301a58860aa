"""evaluate.py --solution-loss against transformers' PhiForCausalLM, and the bootstrap behind its intervals."""
import json

import numpy as np
import pytest
import torch

import evaluate
from conftest import SHARED
from model import Phi, PhiConfig
from prepare import get_tokenizer

transformers = pytest.importorskip("transformers")
DATA = SHARED / "data"
pytestmark = pytest.mark.skipif(not (DATA / "HumanEval.jsonl.gz").exists(), reason="needs ../shared/data")


def reference_loss(hf, prompt, solution, block_size):
    """The definition, written independently of evaluate.py: tag every token as prompt or solution, keep the last
    block_size tokens, and average the negative log-likelihood of the solution tokens that have a predecessor."""
    tok = get_tokenizer()
    p, s = tok.encode(prompt), tok.encode(solution)
    ids, is_solution = (p + s)[-block_size:], ([False] * len(p) + [True] * len(s))[-block_size:]
    with torch.no_grad():
        logp = torch.log_softmax(hf(torch.tensor([ids])).logits[0, :-1].double(), -1)
    nll = -logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    return nll[torch.tensor(is_solution[1:])].mean().item()


@pytest.mark.parametrize("task", ["humaneval", "mbpp"])
def test_solution_loss_matches_transformers(tmp_path, task):
    torch.manual_seed(0)
    block = 160  # some prompt + solution pairs fit, some are longer than the context and keep their end
    model = Phi(PhiConfig.preset("tiny", n_layer=2, block_size=block))
    with torch.no_grad():  # larger than the init's weights, so the losses differ from problem to problem
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(tmp_path / "phi")
    hf = transformers.PhiForCausalLM.from_pretrained(tmp_path / "phi").eval()
    out = tmp_path / "report.json"
    evaluate.main(["--task", task, "--data-dir", str(DATA), "--ckpt", str(tmp_path / "phi"), "--limit", "12",
                   "--solution-loss", "--batch-size", "5", "--out", str(out)])
    report = json.loads(out.read_text())
    problems = evaluate.load_problems(task, DATA)[:12]
    tok = get_tokenizer()
    lengths = [len(tok.encode(p["prompt"])) + len(tok.encode(p["canonical_solution"])) for p in problems]
    assert min(lengths) <= block < max(lengths)  # both cases are covered
    want = {p["task_id"]: reference_loss(hf, p["prompt"], p["canonical_solution"], block) for p in problems}
    got = report["solution_loss_per_task"]
    assert list(got) == list(want)
    assert max(abs(got[t] - want[t]) for t in want) < 1e-4, {t: got[t] - want[t] for t in want}
    assert np.std(list(got.values())) > 0.01  # the check above compares numbers that differ
    assert report["solution_loss"] == pytest.approx(np.mean(list(want.values())), abs=1e-4)
    lo, hi = report["solution_loss_ci95"]
    assert lo < report["solution_loss"] < hi
    assert "pass@1" not in report  # no --samples: only the loss was asked for


def test_a_window_cut_inside_the_solution_still_scores_it():
    """A solution longer than the whole context: the window holds solution tokens only, and all but its first are
    scored (nothing precedes the first one)."""
    tok = get_tokenizer()
    problem = {"task_id": "x", "prompt": "def f():\n", "canonical_solution": "    return [" + "1, " * 80 + "]\n"}
    [(ids, first)] = evaluate.solution_windows([problem], 32)
    assert ids == (tok.encode(problem["prompt"]) + tok.encode(problem["canonical_solution"]))[-32:] and first == 1


def test_bootstrap_is_deterministic_and_pairing_is_tighter():
    rng = np.random.default_rng(1)
    hardness = rng.normal(3.0, 1.0, 300)  # problems differ a lot; two models differ a little, on every problem
    a = dict(enumerate(hardness + rng.normal(0, 0.05, 300)))
    b = dict(enumerate(hardness + 0.1 + rng.normal(0, 0.05, 300)))
    ci = evaluate.bootstrap_ci(list(a.values()))
    assert ci == evaluate.bootstrap_ci(list(a.values()))  # the same values, the same interval
    assert ci != evaluate.bootstrap_ci(list(a.values()), seed=1)
    assert ci[0] < np.mean(list(a.values())) < ci[1]
    paired = evaluate.paired_difference(b, a)
    lo, hi = paired["ci95"]
    assert paired["problems"] == 300 and 0.09 < paired["mean"] < 0.11 and 0 < lo < hi
    separate = evaluate.bootstrap_ci(list(b.values()))[1] - evaluate.bootstrap_ci(list(b.values()))[0]
    assert hi - lo < separate / 10  # pairing removes the problems' own spread from the comparison


def test_samples_and_solution_loss_in_one_report(tmp_path):
    """One call, one model load: generated samples scored, and the solution loss beside pass@1."""
    torch.manual_seed(0)
    Phi(PhiConfig.preset("tiny", n_layer=1, block_size=64)).save_pretrained(tmp_path / "phi")
    out = tmp_path / "r.json"
    evaluate.main(["--task", "humaneval", "--data-dir", str(DATA), "--ckpt", str(tmp_path / "phi"), "--limit", "3",
                   "--max-new-tokens", "4", "--samples", str(tmp_path / "s.jsonl"), "--solution-loss", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["pass@1"] == 0.0 and report["samples"] == 3 and len(report["solution_loss_per_task"]) == 3
    with pytest.raises(SystemExit):  # a loss needs a model
        evaluate.main(["--task", "humaneval", "--data-dir", str(DATA), "--solution-loss", "--out", str(out)])


def test_two_reports_compared_from_the_command_line(tmp_path):
    """ablation.py A.json B.json: the paired verdict on any two --solution-loss reports; mismatches refused."""
    import subprocess
    import sys
    rng = np.random.default_rng(2)
    hardness = rng.normal(3.0, 1.0, 100)
    for name, shift, task in (("a", 0.0, "mbpp"), ("b", 0.2, "mbpp"), ("c", 0.0, "humaneval")):
        losses = {f"Mbpp/{i}": float(v) for i, v in enumerate(hardness + shift + rng.normal(0, 0.02, 100))}
        (tmp_path / f"{name}.json").write_text(json.dumps({"task": task, "solution_loss_per_task": losses}))
    run = lambda *files: subprocess.run([sys.executable, "ablation.py", *[str(tmp_path / f) for f in files]],
                                        capture_output=True, text=True)
    p = run("a.json", "b.json")
    assert p.returncode == 0 and p.stdout.startswith("MBPP, problem by problem") and "< " in p.stdout, p.stderr
    assert "predicts the reference solutions better" in p.stdout
    p = run("a.json", "a.json")
    assert "no difference distinguishable from noise" in p.stdout
    p = run("a.json", "c.json")
    assert p.returncode != 0 and "is mbpp" in p.stderr and "is humaneval" in p.stderr
    p = run("a.json", "missing.json")
    assert p.returncode != 0 and p.stderr.startswith("ablation.py: cannot read") and "Traceback" not in p.stderr
