"""
Tests for kernels/flash_attention.py against a float64 PyTorch reference.

    python -m pytest -q tests/test_kernels.py

Without a GPU, tests/conftest.py sets TRITON_INTERPRET=1 and the very same Triton kernels
run through NumPy on the CPU; shapes stay tiny because the interpreter runs every program of
the grid one after the other. Under the interpreter the tests use float32 and float16:
Triton 3.9's interpreter multiplies bfloat16 tiles as raw 16-bit integers in tl.dot (it
stores bf16 as uint16), so bfloat16 is only checked on a GPU.
Every buffer the kernels fill starts as NaN (fixture below), so an element a kernel forgets
to write fails the comparison.
"""

import importlib
import json
import math
import os
import pathlib
import subprocess
import sys

import pytest
import torch
import triton

from kernels import flash_attention

fa = importlib.import_module("kernels.flash_attention")  # the module (the package re-exports the function)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if DEVICE == "cuda" else [])
# float32 is exact-ish under the interpreter but TF32 on a GPU; 16-bit P and dS round to ~3 digits.
TOL = {torch.float32: 1e-5 if DEVICE == "cpu" else 1e-2, torch.float16: 1e-2, torch.bfloat16: 5e-2}


@pytest.fixture(autouse=True)
def nan_outputs(monkeypatch):
    """Make every kernel output buffer start as NaN."""
    def nan_empty(shape, like, dtype=None):
        return torch.full(shape, float("nan"), dtype=dtype or like.dtype, device=like.device)
    monkeypatch.setattr(fa, "_empty", nan_empty)


def reference(q, k, v, causal, keep=None, p=0.0):
    """Attention in float64, the textbook way: the full T x T matrix, then dropout by a given mask."""
    q, k, v = q.double(), k.double(), v.double()
    T = q.shape[-2]
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    probs = s.softmax(-1)
    if keep is not None:
        probs = probs * keep / (1 - rate(p))
    return probs @ v


def rate(p):
    """The dropout rate the kernels actually use: p rounded to the nearest 1/256."""
    return fa.dropout_threshold(p) / 256


def inputs(B, H, T, D, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, T, D, generator=g).to(DEVICE, dtype).requires_grad_() for _ in range(3)]


def check_grads(q, k, v, causal, dtype, keep=None, p=0.0, seed=None):
    """Forward and backward through the kernel and through the reference; compare o, dq, dk, dv."""
    o = flash_attention(q, k, v, causal=causal, dropout_p=p, seed=seed)
    do = torch.randn_like(o)
    dq, dk, dv = torch.autograd.grad(o, (q, k, v), do)
    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    o64 = reference(q64, k64, v64, causal, keep, p)
    want = (o64, *torch.autograd.grad(o64, (q64, k64, v64), do.double()))
    for name, got, ref in zip(("o", "dq", "dk", "dv"), (o, dq, dk, dv), want):
        assert torch.isfinite(got).all(), f"{name} has unwritten (NaN) or infinite elements"
        err = (got.double() - ref).abs().max().item()
        assert err < TOL[dtype] * max(1.0, ref.abs().max().item()), f"{name}: max error {err:.2e}"
    return dq, dk, dv


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("D", [32, 64])
@pytest.mark.parametrize("T", [1, 37, 100])
def test_matches_reference(causal, D, T):
    check_grads(*inputs(2, 2, T, D, torch.float32), causal, torch.float32)


@pytest.mark.parametrize("dtype", DTYPES[1:])
@pytest.mark.parametrize("causal", [True, False])
def test_half_precision(dtype, causal):
    check_grads(*inputs(1, 2, 45, 64, dtype), causal, dtype)


def test_log_sum_exp_and_determinism():
    """The saved statistic is the base-2 log-sum-exp of each score row; two backwards agree bit for bit."""
    q, k, v = inputs(2, 2, 37, 32, torch.float32)
    _, lse = fa._forward(q.detach(), k.detach(), v.detach(), None, True, 0, 32**-0.5)
    s = (q.double() @ k.double().transpose(-1, -2)) / math.sqrt(32)
    s = s.masked_fill(torch.ones(37, 37, dtype=torch.bool, device=DEVICE).triu(1), float("-inf"))
    want = torch.logsumexp(s, -1).reshape(4, 37) / math.log(2)
    assert (lse.double() - want).abs().max() < TOL[torch.float32]
    first = torch.autograd.grad(flash_attention(q, k, v).sum(), (q, k, v))
    second = torch.autograd.grad(flash_attention(q, k, v).sum(), (q, k, v))
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def dropout_mask(q, k, causal, p, seed):
    """Read back the kernel's dropout mask: with V = identity (T <= D), O = P * Z, which is
    zero exactly where an element was dropped (softmax weights are never 0 otherwise)."""
    B, H, T, D = q.shape
    eye = torch.eye(T, D, device=DEVICE).expand(B, H, T, D).contiguous()
    with torch.no_grad():
        o = flash_attention(q, k, eye, causal=causal, dropout_p=p, seed=seed)
    return o[..., :T] != 0, o[..., :T]


def test_dropout_threshold_rounds_p_to_256ths():
    assert fa.dropout_threshold(0.1) == 26 and rate(0.1) == 0.1015625  # phi-1's rate, as FlashAttention-2 draws it
    assert [fa.dropout_threshold(p) for p in (1 / 512, 0.3, 0.5, 0.998)] == [1, 77, 128, 255]


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_dropout_rate_scale_and_byte_lanes(p):
    """Kept fraction 1 - t/256, kept values scaled by exactly 256/(256 - t); and each of the 16
    byte lanes of a Philox draw (key j % 16) keeps at that rate, independently of its neighbour."""
    q, k, _ = inputs(2, 4, 64, 64, torch.float32)
    keep, pz = dropout_mask(q, k, causal=False, p=p, seed=123)
    keep_rate = 1 - rate(p)
    assert abs(keep.double().mean().item() - keep_rate) < 0.012  # 32768 draws: std <= 0.0026
    lanes = keep.double().reshape(-1, 16).mean(0)  # 2048 draws per lane: std <= 0.011
    assert (lanes - keep_rate).abs().max() < 0.055, f"byte lanes keep at {lanes.tolist()}"
    for lag in (1, 2, 4, 8, 16):  # keys j and j + lag agree as often as independent draws would
        agree = (keep[..., lag:] == keep[..., :-lag]).double().mean().item()
        assert abs(agree - (keep_rate**2 + (1 - keep_rate) ** 2)) < 0.02, f"keys {lag} apart are correlated"
    probs = reference(q, k, torch.eye(64, device=DEVICE).expand(2, 4, 64, 64), causal=False)
    scale = 256 / (256 - fa.dropout_threshold(p))
    assert torch.allclose(pz[keep].double(), probs[keep] * scale, rtol=TOL[torch.float32])
    # batch and head enter the random counter: their masks differ
    assert (keep[0, 0] != keep[0, 1]).any() and (keep[0, 0] != keep[1, 0]).any()


def test_dropout_seeds():
    q, k, v = (x.detach() for x in inputs(1, 2, 37, 32, torch.float32))
    run = lambda seed: flash_attention(q, k, v, dropout_p=0.2, seed=seed)  # noqa: E731
    assert torch.equal(run(7), run(7))
    assert torch.equal(run(7), run(torch.tensor([7], device=DEVICE)))  # an int or a device tensor
    assert not torch.equal(run(7), run(8))
    torch.manual_seed(0)
    a, b = run(None), run(None)  # consecutive calls draw fresh seeds...
    torch.manual_seed(0)
    assert torch.equal(run(None), a) and not torch.equal(a, b)  # ...that torch.manual_seed replays


@pytest.mark.parametrize("causal", [True, False])
def test_dropout_mask_identical_in_all_three_kernels(causal):
    """Read the mask back out of each kernel that draws it, with K = V = identity (T <= D):
    - forward: O = P*Z;
    - dK/dV kernel, with dO = identity: dV = (P*Z)^T dO, so dV^T = P*Z;
    - dQ kernel, with dO = ones: dP = (dO V^T) * Z = Z, so dQ = scale * dS = scale * P * (Z - delta)
      and Z = dS / P + delta, delta_i = sum_j O_ij.
    T = 37 is ragged and the three kernels tile differently (the dK/dV tiles are transposed)."""
    p, seed, T, D = 0.25, 99, 37, 64
    q = inputs(1, 2, T, D, torch.float32)[0]
    eye = torch.eye(T, D, device=DEVICE).expand(1, 2, T, D).contiguous()
    v = eye.clone().requires_grad_()
    o = flash_attention(q, eye, v, causal=causal, dropout_p=p, seed=seed)
    scale = D**-0.5
    dv = torch.autograd.grad(o, v, eye, retain_graph=True)[0]
    dq = torch.autograd.grad(o, q, torch.ones_like(o))[0]
    probs = reference(q.detach(), eye, eye, causal)[..., :T]  # P itself: V = I
    visible = probs > 0
    delta = o.detach().double().sum(-1, keepdim=True)
    z = torch.where(visible, dq[..., :T].double() / scale / probs.clamp_min(1e-300) + delta, 0.0)
    keep_fwd = o.detach()[..., :T] != 0
    keep_dkdv = dv[..., :T].transpose(-1, -2) != 0
    keep_dq = z > 0.5 / (1 - rate(p))
    assert 0.6 < keep_fwd[visible].double().mean() < 0.9  # dropout happened, at about 1 - p
    assert torch.equal(keep_fwd & visible, keep_dkdv & visible), "the dK/dV kernel drew another mask"
    assert torch.equal(keep_fwd & visible, keep_dq & visible), "the dQ kernel drew another mask"
    atol = 1e-3 if DEVICE == "cpu" else 1e-2  # TF32 on a GPU
    assert torch.allclose(z[visible], keep_fwd[visible].double() / (1 - rate(p)), atol=atol)  # Z is 0 or 1/(1-p')


@pytest.mark.parametrize("causal", [True, False])
def test_dropout_gradients_use_the_forward_mask(causal):
    """Gradients equal the reference's computed with the mask the forward drew: so the backward
    regenerated exactly that mask. T = 37 < D = 64 also puts a ragged tail under dropout."""
    p, seed = 0.25, 2024
    q, k, v = inputs(2, 2, 37, 64, torch.float32)
    keep, _ = dropout_mask(q.detach(), k.detach(), causal, p, seed)
    check_grads(q, k, v, causal, torch.float32, keep=keep, p=p, seed=seed)


def test_autotune_once_per_power_of_two_length(monkeypatch):
    """The autotuner times its candidates once per T_BUCKET (T rounded up to a power of two), not
    once per exact length. Under the interpreter there is one candidate, so two are made here and
    the timing is stubbed: what is counted is how often the autotuner decides to time them."""
    tuner = fa._fwd_kernel
    only = tuner.configs[0]
    twin = triton.Config(dict(only.kwargs), num_warps=2 * only.num_warps, num_stages=only.num_stages)
    timed = []
    monkeypatch.setattr(tuner, "configs", [only, twin])
    monkeypatch.setattr(tuner, "cache", {})
    monkeypatch.setattr(tuner, "cache_results", False)  # on a GPU: no choice read back from an earlier run
    monkeypatch.setattr(tuner, "_bench", lambda *args, config, **meta: timed.append(config) or 1.0)
    for T in (33, 50, 64, 65, 100, 128):
        x = torch.randn(1, 1, T, 16, device=DEVICE)
        fa._forward(x, x, x, None, True, 0, 0.25)
    assert len(timed) == 4  # lengths 33-64, then 65-128: two candidates timed for each bucket


@pytest.mark.parametrize("block_m, block_n, message", [(32, 24, "powers of two"), (32, 8, "at least 16"),
                                                       (16, 32, "diagonal block")])
def test_bad_tiles_fail_at_compile_time(block_m, block_n, message):
    """tl.static_assert guards the tile rules: a bad config stops with its reason, not wrong numbers."""
    x = torch.randn(1, 1, 32, 16, device=DEVICE)
    o, lse = torch.empty_like(x), torch.empty(1, 32, device=DEVICE)
    with pytest.raises(Exception) as error:
        fa._fwd_kernel.fn[(1, 1)](x, x, x, o, lse, None, 32, 32, 0.25, 0, HEAD_DIM=16, CAUSAL=True, DROPOUT=False,
                                  BLOCK_M=block_m, BLOCK_N=block_n)
    chain = [error.value]  # the compiler wraps the assertion once per calling function
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    assert any(message in str(e) for e in chain), chain


def test_bad_inputs_get_one_line_errors():
    q = torch.randn(1, 2, 8, 32, device=DEVICE)
    with pytest.raises(ValueError, match="shape"):
        flash_attention(q, q[:, :1], q)
    with pytest.raises(ValueError, match="head_dim"):
        flash_attention(q[..., :24], q[..., :24], q[..., :24])
    with pytest.raises(ValueError, match="dtype"):
        flash_attention(q, q.half(), q)
    with pytest.raises(ValueError, match="dropout_p"):
        flash_attention(q, q, q, dropout_p=1.0)
    with pytest.raises(ValueError, match="dropout_p"):
        flash_attention(q, q, q, dropout_p=1e-3)  # below the kernels' resolution: would silently be 0


@pytest.mark.parametrize("causal", [False, True])
def test_ragged_tail_with_large_negative_scores(causal):
    """fp16, T = 37 (a ragged last key block in every kernel), scores around -200: exp2(0 - L) overflows
    float32 for a key past T, so an unmasked tail turns dQ into inf * 0 = NaN. Compared with SDPA in float32."""
    g = torch.Generator().manual_seed(0)
    B, H, T, D = 1, 2, 37, 32
    q = (6 + 0.5 * torch.randn(B, H, T, D, generator=g)).to(DEVICE, torch.float16).requires_grad_()
    k = (-6 + 0.5 * torch.randn(B, H, T, D, generator=g)).to(DEVICE, torch.float16).requires_grad_()
    v = torch.randn(B, H, T, D, generator=g).to(DEVICE, torch.float16).requires_grad_()
    o = flash_attention(q, k, v, causal=causal)
    do = torch.randn_like(o)
    got = (o, *torch.autograd.grad(o, (q, k, v), do))
    q32, k32, v32 = (x.detach().float().requires_grad_() for x in (q, k, v))
    o32 = torch.nn.functional.scaled_dot_product_attention(q32, k32, v32, is_causal=causal)
    want = (o32, *torch.autograd.grad(o32, (q32, k32, v32), do.float()))
    assert (q32 @ k32.transpose(-1, -2)).max().item() * D**-0.5 < -150  # the regime where exp2(-L) overflows
    for name, a, b in zip(("o", "dq", "dk", "dv"), got, want):
        assert torch.isfinite(a).all(), f"{name} has NaN or inf elements"
        err = (a.float() - b).abs().max().item()
        assert err < 2e-2 * max(1.0, b.abs().max().item()), f"{name}: max error {err:.2e}"


@pytest.mark.parametrize("checkpointing", [False, True])
def test_compiled_model_with_dropout_is_one_graph(checkpointing):
    """torch.compile traces the model at the paper's attention dropout 0.1 into one forward and one
    backward graph (fullgraph=True raises at any break), and computes what eager computes: the same
    seeds drawn in the same order, so the same masks and gradients, with gradient checkpointing too.
    On CPU the model takes the very code path of a CUDA run (attention="triton" is what "auto" picks
    on CUDA); only the kernels run under the interpreter. The partitioner is inductor's (min-cut):
    it decides what the backward saves and what it recomputes."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch.partitioners import min_cut_rematerialization_partition

    from model import Phi, PhiConfig

    graphs = []

    def counting(kind):
        def compile_graph(gm, example_inputs):
            graphs.append(kind)
            return make_boxed_func(gm.forward)
        return compile_graph

    backend = aot_autograd(fw_compiler=counting("forward"), bw_compiler=counting("backward"),
                           partition_fn=min_cut_rematerialization_partition)
    cfg = PhiConfig.preset("tiny", n_layer=2, block_size=32, attention="triton", attn_pdrop=0.1,
                           gradient_checkpointing=checkpointing)
    torch.manual_seed(0)
    model = Phi(cfg).to(DEVICE).train()
    idx = torch.randint(cfg.vocab_size, (2, 32), device=DEVICE)
    probe = torch.randn(2, 32, cfg.n_embd, device=DEVICE)  # a loss that sees the masks (LayerNorm hides scale)

    def step(run, seed=1):
        model.zero_grad()
        torch.manual_seed(seed)  # the attention seeds come from here, one per layer and step
        loss = (run(idx) * probe).sum()
        loss.backward()
        return [loss.detach()] + [p.grad.clone() for p in model.parameters() if p.grad is not None]

    torch._dynamo.reset()
    compiled = step(torch.compile(model.features, backend=backend, fullgraph=True))
    assert graphs == ["forward", "backward"]
    eager = step(model.features)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(compiled, eager))
    other = step(model.features, seed=2)  # and dropout did act: other seeds, another loss and gradient
    assert not torch.allclose(other[0], eager[0], rtol=1e-3)
    assert not all(torch.allclose(a, b, rtol=1e-2) for a, b in zip(other[1:], eager[1:]))


@pytest.mark.skipif(not fa.INTERPRET, reason="the dry run needs the kernels imported under TRITON_INTERPRET=1")
def test_bench_dry_run_writes_its_json(tmp_path):
    """kernels/bench.py --dry-run: the bench's own code on the CPU, interpreted, at a tiny shape."""
    bench = importlib.import_module("kernels.bench")
    out = tmp_path / "bench.json"
    bench.main(["--dry-run", "--json", str(out)])
    report = json.loads(out.read_text())
    assert report["dry_run"] and {"device", "versions", "date", "shape", "rows"} <= report.keys()
    rows = {(r["kernel"], r["dropout"]): r for r in report["rows"]}
    assert {k for k, _ in rows} == {"ours (Triton)", "sdpa", "sdpa flash", "sdpa cuDNN", "sdpa efficient"}
    for p in (0.0, 0.1):
        assert rows["ours (Triton)", p]["fwd_bwd_ms"] > 0 and "refused" not in rows["ours (Triton)", p]
    assert "refused" in rows["sdpa cuDNN", 0.0]  # no cuDNN on a CPU: recorded, not a crash
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="needs a CUDA GPU"):
            bench.main([])


def test_kernels_compile_for_sm90():
    """The interpreter accepts code that Triton's compiler rejects (it ran a kernel reading a plain
    global, which does not compile). So compile one config of each kernel, with dropout, for an
    H100 with Triton's own compiler and ptxas, which need no GPU."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = pathlib.Path(fa.__file__).with_name("compile_check.py")
    run = subprocess.run([sys.executable, str(script), "--first"], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith(("| forward", "| dQ", "| dK/dV"))]
    assert len(rows) == 3, run.stdout
