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
import math

import pytest
import torch

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
        probs = probs * keep / (1 - p)
    return probs @ v


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
    _, lse = fa._forward(q.detach(), k.detach(), v.detach(), True, 0.0, 32**-0.5, 0)
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


def test_dropout_keeps_one_minus_p_scaled():
    p = 0.3
    q, k, _ = inputs(2, 4, 32, 32, torch.float32)
    keep, pz = dropout_mask(q, k, causal=False, p=p, seed=123)
    assert abs(keep.double().mean().item() - (1 - p)) < 0.03  # 8192 draws: std 0.005
    probs = reference(q, k, torch.eye(32, device=DEVICE).expand(2, 4, 32, 32), causal=False)
    assert torch.allclose(pz[keep].double(), probs[keep] / (1 - p), rtol=TOL[torch.float32])  # kept: scaled by 1/(1-p)
    # batch and head enter the random counter: their masks differ
    assert (keep[0, 0] != keep[0, 1]).any() and (keep[0, 0] != keep[1, 0]).any()


def test_dropout_seeds():
    q, k, v = (x.detach() for x in inputs(1, 2, 37, 32, torch.float32))
    run = lambda seed: flash_attention(q, k, v, dropout_p=0.2, seed=seed)  # noqa: E731
    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))
    torch.manual_seed(0)
    a, b = run(None), run(None)  # consecutive calls draw fresh seeds...
    torch.manual_seed(0)
    assert torch.equal(run(None), a) and not torch.equal(a, b)  # ...that torch.manual_seed replays


@pytest.mark.parametrize("causal", [True, False])
def test_dropout_gradients_use_the_forward_mask(causal):
    """Gradients equal the reference's computed with the mask the forward drew: so the backward
    regenerated exactly that mask. T = 37 < D = 64 also puts a ragged tail under dropout."""
    p, seed = 0.25, 2024
    q, k, v = inputs(2, 2, 37, 64, torch.float32)
    keep, _ = dropout_mask(q.detach(), k.detach(), causal, p, seed)
    check_grads(q, k, v, causal, torch.float32, keep=keep, p=p, seed=seed)


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
