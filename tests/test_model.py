"""model.py against the reference implementation (transformers' PhiForCausalLM) and its own contracts."""

import pytest
import torch

from model import Phi, PhiConfig, linear_cross_entropy, load_model, read_safetensors, write_safetensors
from prepare import EOT, N_VOCAB, get_tokenizer

transformers = pytest.importorskip("transformers")

TINY_HF = dict(vocab_size=51200, hidden_size=128, intermediate_size=512, num_hidden_layers=3,
               num_attention_heads=2, max_position_embeddings=256, partial_rotary_factor=0.5,
               rope_theta=10000.0, layer_norm_eps=1e-5, hidden_act="gelu_new", tie_word_embeddings=False)


def _randomize(model):
    """Non-zero everything, biases and LayerNorms included, so no mismatched term can hide behind a zero."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05 + (1.0 if p.ndim == 1 and p.shape[0] == 128 else 0.0))
    return model


def _hf_model():
    torch.manual_seed(0)
    m = transformers.PhiForCausalLM(transformers.PhiConfig(**TINY_HF))
    return _randomize(m).eval()


def _ids(B=2, T=50):
    return torch.randint(0, N_VOCAB, (B, T), generator=torch.Generator().manual_seed(1))


def test_hf_save_then_our_from_pretrained(tmp_path):
    hf = _hf_model()
    hf.save_pretrained(tmp_path)
    ours = Phi.from_pretrained(tmp_path).eval()
    assert ours.config.rotary_dim == 32 and ours.config.n_layer == 3
    idx = _ids()
    with torch.no_grad():
        ref = hf(idx).logits
        got = ours(idx)
    assert torch.allclose(got, ref, atol=1e-4, rtol=0), (got - ref).abs().max()


def test_our_save_pretrained_then_hf_load(tmp_path):
    cfg = PhiConfig(n_layer=3, n_embd=128, n_head=2, n_inner=512, block_size=256)
    ours = _randomize(Phi(cfg)).eval()
    ours.save_pretrained(tmp_path)
    hf = transformers.PhiForCausalLM.from_pretrained(tmp_path).eval()
    idx = _ids()
    with torch.no_grad():
        ref = ours(idx)
        got = hf(idx).logits
    assert torch.allclose(got, ref, atol=1e-4, rtol=0), (got - ref).abs().max()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_safetensors_reader_matches_reference_library(tmp_path, dtype):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    tensors = {"a": torch.randn(3, 5).to(dtype), "b.bias": torch.randn(7).to(dtype), "c": torch.arange(6).view(2, 3)}
    safetensors_torch.save_file(tensors, tmp_path / "ref.safetensors")
    for name, t in read_safetensors(tmp_path / "ref.safetensors").items():
        assert torch.equal(t, tensors[name]) and t.dtype == tensors[name].dtype
    write_safetensors(tmp_path / "ours.safetensors", tensors)
    for name, t in safetensors_torch.load_file(tmp_path / "ours.safetensors").items():
        assert torch.equal(t, tensors[name])


def test_sharded_fp16_checkpoint_loads(tmp_path):
    hf = _hf_model().half()
    hf.save_pretrained(tmp_path, max_shard_size="1MB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    ours = Phi.from_pretrained(tmp_path)
    assert next(ours.parameters()).dtype == torch.float32  # our module keeps fp32 masters; values are fp16's
    hf_sd = hf.state_dict()
    for name, p in ours.state_dict().items():
        assert torch.equal(p, hf_sd[name].float()), name


def test_parameter_counts_match_release():
    with torch.device("meta"):
        assert Phi(PhiConfig.preset("phi-1")).num_params() == 1_418_270_720
        assert Phi(PhiConfig.preset("phi-1-small")).num_params() == 356_794_368


def test_loss_ignores_minus_one():
    torch.manual_seed(0)
    model = Phi(PhiConfig.preset("tiny")).eval()
    idx = _ids(2, 16)
    targets = idx.roll(-1, 1)
    targets[:, -4:] = -1
    logits, loss = model(idx), model(idx, targets)
    ref = torch.nn.functional.cross_entropy(logits[:, :-4].flatten(0, 1), targets[:, :-4].flatten())
    assert torch.allclose(loss, ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_chunked_cross_entropy_equals_the_plain_one(dtype):
    """Loss and gradients of h, weight and bias equal F.cross_entropy(lm_head(h).float()), with ignored
    targets, a ragged last chunk and a loss scale, in fp32 and under fp16/bf16 autocast."""
    g = torch.Generator().manual_seed(0)
    N, C, V = 45, 24, 500
    h = torch.randn(N, C, generator=g, requires_grad=True)
    weight = (torch.randn(V, C, generator=g) * 0.3).requires_grad_()
    bias = torch.randn(V, generator=g).requires_grad_()
    targets = torch.randint(0, V, (N,), generator=g)
    targets[::4] = -1
    results = []
    for loss_fn in (lambda: torch.nn.functional.cross_entropy(torch.nn.functional.linear(h, weight, bias).float(),
                                                              targets, ignore_index=-1),
                    lambda: linear_cross_entropy(h, weight, bias, targets, chunk=8)):
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            loss = loss_fn()
        (loss * 1024).backward()  # as GradScaler scales it
        results.append([loss.detach()] + [p.grad for p in (h, weight, bias)])
        h.grad = weight.grad = bias.grad = None
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    for ref, got in zip(*results):
        assert got.dtype == ref.dtype and (got - ref).abs().max() <= tol * ref.abs().max()
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        assert torch.equal(linear_cross_entropy(h, weight, bias, targets, chunk=8), results[1][0])  # evaluation's path


def test_training_keeps_no_logits_for_the_backward():
    """Nothing as large as the logits (tokens x vocab) is saved for the backward."""
    torch.manual_seed(0)
    model = Phi(PhiConfig.preset("tiny"))
    idx = _ids(2, 256)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        loss = model(idx, idx.roll(-1, 1))
    loss.backward()
    assert max(saved) < idx.numel() * model.config.vocab_size / 2
    assert model.lm_head.weight.grad is not None and model.model.embed_tokens.weight.grad is not None


def test_greedy_kv_cache_equals_argmax_without_cache():
    torch.manual_seed(0)
    model = Phi(PhiConfig.preset("tiny")).eval()
    idx = _ids(3, 20)
    out = model.generate(idx, 24, stop_ids=[])
    ref = idx
    with torch.no_grad():
        for _ in range(24):
            logits = model(ref)
            ref = torch.cat([ref, logits[:, -1, :N_VOCAB].argmax(-1, keepdim=True)], dim=1)
    assert out.shape == (3, 44)
    assert torch.equal(out, ref)


def test_left_padded_batch_generates_like_each_prompt_alone():
    torch.manual_seed(0)
    model = Phi(PhiConfig.preset("tiny")).eval()
    prompts = [_ids(1, 12)[0], _ids(1, 5)[0][:5]]
    T = max(len(p) for p in prompts)
    idx = torch.stack([torch.cat([torch.full((T - len(p),), EOT), p]) for p in prompts])
    mask = torch.stack([torch.arange(T) >= T - len(p) for p in prompts])
    batched = model.generate(idx, 10, attention_mask=mask, stop_ids=[])[:, T:]
    for row, p in zip(batched, prompts):
        alone = model.generate(p[None], 10, stop_ids=[])[0, len(p):]
        assert torch.equal(row, alone)


def test_stop_strings_stop_each_row():
    torch.manual_seed(0)
    model = Phi(PhiConfig.preset("tiny")).eval()
    tok = get_tokenizer()
    idx = _ids(2, 8)
    free = model.generate(idx, 30, stop_ids=[])
    text0 = tok.decode(free[0, 8:].tolist())
    stop = text0[5:8]  # a string the first row is certain to produce
    out = model.generate(idx, 30, stop_ids=[], stop_strings=[stop])
    assert stop in tok.decode(out[0, 8:].tolist())
    tail = out[0, 8:].tolist()
    first = next(i for i in range(1, len(tail) + 1) if stop in tok.decode(tail[:i]))
    assert all(t == EOT for t in tail[first:])  # filled with end-of-text once stopped


def test_sampling_is_seeded_and_top_p_tiny_is_greedy():
    torch.manual_seed(0)
    model = Phi(PhiConfig.preset("tiny")).eval()
    idx = _ids(2, 8)
    torch.manual_seed(5)
    a = model.generate(idx, 10, temperature=1.0, top_p=0.9, stop_ids=[])
    torch.manual_seed(5)
    b = model.generate(idx, 10, temperature=1.0, top_p=0.9, stop_ids=[])
    assert torch.equal(a, b)
    greedy = model.generate(idx, 10, stop_ids=[])
    nucleus = model.generate(idx, 10, temperature=1.0, top_p=1e-6, stop_ids=[])
    assert torch.equal(greedy, nucleus)


def test_load_model_from_training_checkpoint(tmp_path):
    import dataclasses
    torch.manual_seed(0)
    model = Phi(PhiConfig.preset("tiny"))
    torch.save({"model": model.state_dict(), "model_config": dataclasses.asdict(model.config)}, tmp_path / "ckpt.pt")
    loaded = load_model(tmp_path)
    idx = _ids(1, 8)
    assert torch.equal(loaded(idx), model.eval()(idx))


def test_triton_attention_path_matches_sdpa():
    """The model routed through our kernel (here under TRITON_INTERPRET) gives SDPA's loss and gradients."""
    pytest.importorskip("triton")
    torch.manual_seed(0)
    ref = Phi(PhiConfig.preset("tiny", n_layer=2, block_size=64, attention="sdpa"))
    ker = Phi(PhiConfig.preset("tiny", n_layer=2, block_size=64, attention="triton"))
    ker.load_state_dict(ref.state_dict())
    idx = _ids(2, 24)
    losses = []
    for m in (ref, ker):
        loss = m(idx, idx.roll(-1, 1))
        loss.backward()
        losses.append(loss)
    assert torch.allclose(losses[0], losses[1], atol=1e-5)
    g_ref, g_ker = ref.model.layers[0].self_attn.q_proj.weight.grad, ker.model.layers[0].self_attn.q_proj.weight.grad
    assert torch.allclose(g_ref, g_ker, atol=1e-5)
