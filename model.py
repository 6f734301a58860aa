"""
model.py: the phi-1 decoder, as the paper and the released microsoft/phi-1 checkpoint define it.

    python model.py                                 # build the tiny model and sample from it
    python model.py --ckpt path/to/phi-1 --prompt 'def fib(n):'   # a Hugging Face download or our ckpt

phi-1 (paper, section 2.3) is a decoder-only transformer in the style of CodeGen / GPT-J:

    tokens -> embedding -> dropout
           -> 24 x Block:   h = LayerNorm(x)                      one LayerNorm, shared ...
                            x = x + Attention(h) + MLP(h)         ... by attention and MLP, in parallel
           -> LayerNorm -> lm_head (with bias, not tied to the embedding) -> logits

  * Attention: 32 heads of 64; q, k, v and the output projection ("dense") all carry a bias.
    Rotary position embedding on the first 32 of each head's 64 dims only ("partial rotary",
    rotary dimension 32), in the non-interleaved "rotate half" convention; the other 32 dims
    carry no position information at all.
  * MLP: fc1 (2048 -> 8192), GELU with the tanh approximation ("gelu_new"), fc2 (8192 -> 2048).
  * The vocabulary is the CodeGen tokenizer's 50,295 ids padded to 51,200 (a multiple of 64/128
    keeps the matmuls on fast paths). phi-1 has 1,418,270,720 parameters.

Parameter names are exactly Hugging Face's PhiForCausalLM names, so checkpoints move both ways
with no renaming table: Phi.from_pretrained(dir) reads a downloaded microsoft/phi-1, and
model.save_pretrained(dir) writes a directory that transformers (and so vLLM) load.
"""

import argparse
import dataclasses
import json
import math
import os
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from prepare import EOT, N_VOCAB, atomic_write, get_tokenizer


@dataclasses.dataclass
class PhiConfig:
    vocab_size: int = 51200        # 50,295 tokenizer ids, padded
    n_layer: int = 24
    n_embd: int = 2048
    n_head: int = 32
    n_inner: int = 8192            # MLP width
    block_size: int = 2048         # context length
    rotary_dim: int = 32           # rotate 32 of each head's 64 dims
    rope_theta: float = 10000.0
    layer_norm_eps: float = 1e-5
    embd_pdrop: float = 0.0        # the paper trains with attention and residual dropout 0.1
    attn_pdrop: float = 0.0
    resid_pdrop: float = 0.0
    attention: str = "auto"        # auto: our Triton kernel on CUDA, SDPA elsewhere | triton | sdpa
    gradient_checkpointing: bool = False

    @classmethod
    def preset(cls, name, **overrides):
        sizes = {
            "phi-1": dict(n_layer=24, n_embd=2048, n_head=32, n_inner=8192),        # 1.3B (paper 2.3)
            "phi-1-small": dict(n_layer=20, n_embd=1024, n_head=16, n_inner=4096),  # 350M (paper 3.2)
            "tiny": dict(n_layer=4, n_embd=128, n_head=2, n_inner=512),             # CPU-sized, same shapes per head
        }
        if name not in sizes:
            raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(sizes)}")
        return cls(**{**sizes[name], **overrides})

    @property
    def head_dim(self):
        return self.n_embd // self.n_head


# ----------------------------------------------------------------------------
# Rotary position embedding (Su et al. 2021), partial and "rotate half" as in phi-1.

def rotary_cos_sin(pos, dim, theta):
    """cos and sin of angle pos * theta^(-2i/dim) for i < dim/2, each repeated twice along the last
    axis ([f0..f15, f0..f15]) to match the rotate-half layout. pos: (B, T) -> (B, 1, T, dim)."""
    inv_freq = theta ** (-torch.arange(0, dim, 2, device=pos.device, dtype=torch.float32) / dim)
    angles = pos.float()[..., None] * inv_freq                 # (B, T, dim/2)
    angles = torch.cat([angles, angles], dim=-1)[:, None]       # (B, 1, T, dim)
    return angles.cos(), angles.sin()


def apply_rotary(x, cos, sin):
    """Rotate the first rot dims of x (B, H, T, D) pairwise: dim i pairs with dim i + rot/2.
    rotate_half([a, b]) = [-b, a], so x*cos + rotate_half(x)*sin turns each (a_i, b_i) by its angle."""
    rot = cos.shape[-1]
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    a, b = x_rot.chunk(2, dim=-1)
    rotated = x_rot * cos + torch.cat([-b, a], dim=-1) * sin
    return torch.cat([rotated.to(x.dtype), x_pass], dim=-1)


# ----------------------------------------------------------------------------
# Attention goes through this one function, so the kernel can be swapped by a flag.

def attention(q, k, v, causal, dropout_p, impl="auto", mask=None):
    """softmax(q k^T / sqrt(d)) v over (B, H, T, D) tensors.

    impl="auto" uses our Triton FlashAttention (kernels/) on CUDA when its head_dim suits the kernel,
    and PyTorch's SDPA elsewhere. An explicit boolean `mask` (True = may attend) is only needed for
    padded batches in generation and embedding; those always go through SDPA, which takes arbitrary
    masks. The kernel drops at dropout_p rounded to the nearest 1/256 (0.1 -> 0.1016, the rate
    FlashAttention-2 draws too), with its seed drawn on the device: torch.compile sees no break.
    """
    use_triton = impl == "triton" or (impl == "auto" and q.is_cuda)
    if use_triton and mask is None and q.shape == k.shape:  # KV-cache steps (Tq != Tk) go to SDPA
        from kernels.flash_attention import HEAD_DIMS, flash_attention  # triton is optional off Linux+CUDA
        if impl == "triton" or q.shape[-1] in HEAD_DIMS:  # "triton" insists, and errors say why
            return flash_attention(q, k, v, causal=causal, dropout_p=dropout_p)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p,
                                          is_causal=causal and mask is None)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.q_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.k_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.v_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dense = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, x, cos, sin, mask=None, cache=None):
        B, T, C = x.shape
        split = lambda t: t.view(B, T, self.cfg.n_head, self.cfg.head_dim).transpose(1, 2)  # (B, H, T, D)
        q = apply_rotary(split(self.q_proj(x)), cos, sin)
        k = apply_rotary(split(self.k_proj(x)), cos, sin)
        v = split(self.v_proj(x))
        if cache is not None:  # generation: append this step's keys/values, attend over all so far
            k, v = cache.update(k, v)
        causal = cache is None or cache.prefill  # one new token may attend to every cached one
        dropout = self.cfg.attn_pdrop if self.training else 0.0
        y = attention(q, k, v, causal, dropout, self.cfg.attention, mask)
        return self.dense(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.fc1 = nn.Linear(cfg.n_embd, cfg.n_inner)
        self.fc2 = nn.Linear(cfg.n_inner, cfg.n_embd)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    """x + attn(ln(x)) + mlp(ln(x)): one LayerNorm, attention and MLP side by side (GPT-J style)."""

    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps)
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.resid_dropout = nn.Dropout(cfg.resid_pdrop)

    def forward(self, x, cos, sin, mask=None, cache=None):
        h = self.input_layernorm(x)
        a = self.resid_dropout(self.self_attn(h, cos, sin, mask, cache))
        return x + a + self.resid_dropout(self.mlp(h))


# ----------------------------------------------------------------------------
# The loss: lm_head and cross-entropy a chunk of tokens at a time, never all the logits at once.
# phi-1 at micro-batch 8 has 16,384 x 51,200 logits: 1.7 GB in fp16, 3.4 GB more for the fp32 copy that
# cross-entropy wants, and as much again for their gradient. Chunk by chunk, only one chunk's logits exist.

def linear_cross_entropy(h, weight, bias, targets, chunk=1024):
    """F.cross_entropy(F.linear(h, weight, bias).float(), targets, ignore_index=-1), computed `chunk` rows
    at a time. h (N, C), targets (N). Under autocast the matmuls run in its dtype, as F.linear's would."""
    device = h.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        h, weight, bias = h.to(dtype), weight.to(dtype), bias.to(dtype)
    with torch.autocast(device, enabled=False):
        if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad or bias.requires_grad):
            return _LinearCrossEntropy.apply(h, weight, bias, targets, chunk)
        loss_sum, n = _chunked_cross_entropy(h, weight, bias, targets, chunk, grads=False)[:2]
        return loss_sum / n


class _LinearCrossEntropy(torch.autograd.Function):
    """The gradients are computed in the forward, while each chunk's logits are at hand (as Liger-Kernel's
    fused linear cross-entropy does): no logits are kept for the backward and none are computed twice.
    The backward only scales them by the incoming gradient (the fp16 loss scale / accumulation steps)."""

    @staticmethod
    def forward(ctx, h, weight, bias, targets, chunk):
        loss_sum, n, dh, dw, db = _chunked_cross_entropy(h, weight, bias, targets, chunk, grads=True)
        ctx.save_for_backward(dh, dw, db, n)
        ctx.dtypes = weight.dtype, bias.dtype
        return loss_sum / n

    @staticmethod
    def backward(ctx, grad):
        dh, dw, db, n = ctx.saved_tensors
        scale = grad.float() / n  # d(mean)/d(sum), in fp32: the fp16 loss scale can be large
        return ((dh.float() * scale).to(dh.dtype), (dw * scale).to(ctx.dtypes[0]), (db * scale).to(ctx.dtypes[1]),
                None, None)


def _chunked_cross_entropy(h, weight, bias, targets, chunk, grads):
    """(summed loss, number of targets != -1) and, if grads, the gradients of the summed loss with respect to
    h (in h's dtype), weight and bias (fp32 sums over the chunks). Logits come out of the matmul in h's dtype
    and are then taken to fp32 for the softmax, as F.cross_entropy(logits.float()) does."""
    valid = targets != -1
    loss_sum = torch.zeros((), device=h.device)
    dh = torch.empty_like(h) if grads else None
    dw = torch.zeros(weight.shape, device=h.device) if grads else None
    db = torch.zeros(bias.shape, device=h.device) if grads else None
    for start in range(0, h.shape[0], chunk):
        rows = slice(start, start + chunk)
        t, keep = targets[rows].clamp(min=0)[:, None], valid[rows][:, None]
        z = F.linear(h[rows], weight, bias).float()   # (chunk, V) logits
        z_target, z_max = z.gather(1, t), z.amax(dim=1, keepdim=True)
        e = z.sub_(z_max).exp_()                      # in place: z's memory is reused, one pass
        total = e.sum(dim=1, keepdim=True)
        loss_sum = loss_sum + ((z_max + total.log() - z_target) * keep).sum()  # -log softmax(z)[target]
        if grads:
            # d loss / d z = softmax(z) - onehot(target), zero for ignored targets
            g = e.mul_(keep / total).scatter_add_(1, t, -keep.float())
            db += g.sum(0)
            g = g.to(h.dtype)
            dh[rows] = g @ weight
            # In fp16 a chunk's dw sums |g| <= 1 times h over at most `chunk` tokens: it overflows only if one
            # token is the target of most of a chunk's rows, where h is above 64; GradScaler then skips the step.
            dw += (g.t() @ h[rows]).float()
    return loss_sum, valid.sum(), dh, dw, db


class KVCache:
    """Keys and values of one layer, preallocated for the whole generation: (B, H, T_max, D).
    Decoding then costs one token's work per step instead of re-running the whole prefix."""

    def __init__(self, B, H, T_max, D, device, dtype):
        self.k = torch.empty(B, H, T_max, D, device=device, dtype=dtype)
        self.v = torch.empty_like(self.k)
        self.len, self.prefill = 0, True

    def update(self, k, v):
        T = k.shape[2]
        self.k[:, :, self.len:self.len + T] = k
        self.v[:, :, self.len:self.len + T] = v
        self.prefill, self.len = self.len == 0, self.len + T
        return self.k[:, :, :self.len], self.v[:, :, :self.len]


class Decoder(nn.Module):
    """HF's PhiModel: embedding, blocks, final LayerNorm (named so its state_dict keys match)."""

    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.embed_dropout = nn.Dropout(cfg.embd_pdrop)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.final_layernorm = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps)


class Phi(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.model = Decoder(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size)
        self.apply(self._init_weights)
        # GPT-2's scaled init: the residual stream adds 2 projections per layer, so shrink them
        # by sqrt(2 * n_layer) to keep its variance from growing with depth.
        for name, p in self.named_parameters():
            if name.endswith(("dense.weight", "fc2.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)

    def num_params(self, non_embedding=False):
        n = sum(p.numel() for p in self.parameters())
        return n - self.model.embed_tokens.weight.numel() if non_embedding else n

    def flops_per_token(self, T):
        """Training FLOPs per token (forward + backward): 6N for the weight matmuls, N excluding the
        embedding lookup (it is no matmul), plus 12*L*d*T for attention's QK^T and PV (PaLM, app. B)."""
        c = self.config
        return 6 * self.num_params(non_embedding=True) + 12 * c.n_layer * c.n_embd * T

    def _blocks(self, idx, pos, mask=None, caches=None):
        """Embedding and blocks: the hidden states before the final LayerNorm."""
        x = self.model.embed_dropout(self.model.embed_tokens(idx))
        cos, sin = rotary_cos_sin(pos, self.config.rotary_dim, self.config.rope_theta)
        for i, block in enumerate(self.model.layers):
            cache = caches[i] if caches else None
            if self.config.gradient_checkpointing and self.training:
                # recompute activations in backward instead of storing them: ~1/3 more compute, far
                # less memory (phi-1 at micro-batch 8: ~56 -> ~30 GiB, bench/memory.py)
                x = checkpoint(block, x, cos, sin, mask, cache, use_reentrant=False)
            else:
                x = block(x, cos, sin, mask, cache)
        return x

    def forward(self, idx, targets=None):
        """The logits (B, T, vocab); or, given targets, only the mean cross-entropy over targets != -1.
        Training never gets the logits back, so they need not live on through the backward."""
        pos = torch.arange(idx.shape[1], device=idx.device)[None]
        h = self.model.final_layernorm(self._blocks(idx, pos))
        if targets is None:
            return self.lm_head(h)
        return linear_cross_entropy(h.flatten(0, 1), self.lm_head.weight, self.lm_head.bias, targets.flatten())

    def features(self, idx, attention_mask=None):
        """Final-LayerNorm hidden states (B, T, n_embd); padded positions (mask False) are neither
        attended to nor meaningful. For embeddings (filter.py mean-pools them)."""
        pos, mask = _positions_and_mask(idx, attention_mask)
        return self.model.final_layernorm(self._blocks(idx, pos, mask))

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=0.0, top_p=1.0, stop_ids=None, stop_strings=None,
                 attention_mask=None):
        """Continue each row of idx (B, T), left-padded where attention_mask (B, T) is False.

        Greedy at temperature 0, else temperature + nucleus (top-p) sampling. A row stops at a token in
        stop_ids (default: end-of-text) or once its new text contains a stop string; after that it is
        filled with end-of-text. Returns (B, T + steps) with steps <= max_new_tokens.
        """
        B, T = idx.shape
        stop_ids = torch.tensor(list(stop_ids if stop_ids is not None else [EOT]), device=idx.device)
        tok = get_tokenizer() if stop_strings else None
        keep = torch.ones(B, T + max_new_tokens, dtype=torch.bool, device=idx.device)
        if attention_mask is not None:
            keep[:, :T] = attention_mask.bool()
        pos, mask = _positions_and_mask(idx, keep[:, :T])
        p = next(self.parameters())
        caches = [KVCache(B, self.config.n_head, T + max_new_tokens, self.config.head_dim, p.device, p.dtype)
                  for _ in self.model.layers]
        x = self._blocks(idx, pos, mask, caches)[:, -1:]
        done = torch.zeros(B, dtype=torch.bool, device=idx.device)
        out = [idx]
        for step in range(max_new_tokens):
            logits = self.lm_head(self.model.final_layernorm(x))[:, -1].float()
            nxt = torch.where(done, EOT, sample(logits, temperature, top_p))
            out.append(nxt[:, None])
            done |= torch.isin(nxt, stop_ids)
            if tok is not None:
                done |= _hit_stop_strings(tok, torch.cat(out[1:], dim=1), stop_strings, done)
            if done.all() or step == max_new_tokens - 1:
                break
            pos = pos[:, -1:] + 1
            x = self._blocks(nxt[:, None], pos, keep[:, None, None, :T + step + 1], caches)
        return torch.cat(out, dim=1)

    # ------------------------------------------------------------------------
    # Hugging Face checkpoints: config.json + *.safetensors, PhiForCausalLM names.

    @classmethod
    def from_pretrained(cls, path):
        """Load a Hugging Face Phi directory (e.g. a download of microsoft/phi-1)."""
        path = pathlib.Path(path)
        hf = json.loads((path / "config.json").read_text())
        if hf.get("model_type") != "phi":
            raise ValueError(f"{path}/config.json is a {hf.get('model_type')!r} model, not phi")
        rope = hf.get("rope_parameters") or {}  # transformers >= 5 nests these
        n_head = hf["num_attention_heads"]
        cfg = PhiConfig(
            vocab_size=hf["vocab_size"], n_layer=hf["num_hidden_layers"], n_embd=hf["hidden_size"],
            n_head=n_head, n_inner=hf.get("intermediate_size") or 4 * hf["hidden_size"],
            block_size=hf.get("max_position_embeddings", 2048),
            rotary_dim=int(hf["hidden_size"] // n_head * rope.get("partial_rotary_factor",
                                                                   hf.get("partial_rotary_factor", 0.5))),
            rope_theta=rope.get("rope_theta", hf.get("rope_theta", 10000.0)),
            layer_norm_eps=hf.get("layer_norm_eps", 1e-5),
        )
        model = cls(cfg)
        model.load_state_dict(read_safetensors_dir(path))
        return model

    def save_pretrained(self, path, dtype=None):
        """Write config.json + model.safetensors that transformers' PhiForCausalLM.from_pretrained loads."""
        c = self.config
        path = pathlib.Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {k: (v.to(dtype) if dtype else v) for k, v in self.state_dict().items()}
        config = {
            "architectures": ["PhiForCausalLM"], "model_type": "phi",
            "vocab_size": c.vocab_size, "hidden_size": c.n_embd, "intermediate_size": c.n_inner,
            "num_hidden_layers": c.n_layer, "num_attention_heads": c.n_head, "num_key_value_heads": c.n_head,
            "max_position_embeddings": c.block_size, "hidden_act": "gelu_new", "layer_norm_eps": c.layer_norm_eps,
            "partial_rotary_factor": c.rotary_dim / c.head_dim, "rope_theta": c.rope_theta,
            "resid_pdrop": c.resid_pdrop, "embd_pdrop": c.embd_pdrop, "attention_dropout": c.attn_pdrop,
            "qk_layernorm": False, "tie_word_embeddings": False, "bos_token_id": EOT, "eos_token_id": EOT,
            "torch_dtype": str(next(iter(tensors.values())).dtype).removeprefix("torch."),
        }
        write_safetensors(path / "model.safetensors", tensors)
        with atomic_write(path / "config.json") as f:
            json.dump(config, f, indent=2)


def _positions_and_mask(idx, attention_mask):
    """Rotary positions and the SDPA mask for a (left-)padded batch. Without padding: 0..T-1 and no
    mask (the plain causal path). With padding each row counts positions from its first real token,
    and the mask is causal AND 'key is not padding'."""
    B, T = idx.shape
    if attention_mask is None or bool(attention_mask.all()):
        return torch.arange(T, device=idx.device)[None].expand(B, T), None
    keep = attention_mask.bool()
    pos = (keep.long().cumsum(-1) - 1).clamp(min=0)
    causal = torch.ones(T, T, dtype=torch.bool, device=idx.device).tril()
    mask = causal[None, None] & keep[:, None, None, :]
    # a fully padded query row would softmax over nothing (NaN); let it see itself, it is discarded anyway
    mask |= torch.eye(T, dtype=torch.bool, device=idx.device)[None, None] & ~keep[:, None, :, None]
    return pos, mask


def sample(logits, temperature=0.0, top_p=1.0):
    """Next token ids (B,) from logits (B, V). Ids past the tokenizer's 50,295 are padding, never tokens."""
    if logits.shape[-1] > N_VOCAB:
        logits[:, N_VOCAB:] = float("-inf")
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        # nucleus: keep the smallest set of most likely tokens whose mass reaches top_p
        sorted_p, order = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p >= top_p
        sorted_p[drop] = 0.0
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    return torch.multinomial(probs, 1)[:, 0]


def _hit_stop_strings(tok, new_tokens, stop_strings, done):
    """Which unfinished rows' generated text now contains a stop string. Only the last few tokens can
    complete one, so decode just enough of them: a stop string of n bytes spans at most n+1 tokens."""
    n = max(len(s.encode()) for s in stop_strings) + 1
    hit = torch.zeros_like(done)
    for b in (~done).nonzero().flatten().tolist():
        tail = tok.decode(new_tokens[b, -n:].tolist())
        hit[b] = any(s in tail for s in stop_strings)
    return hit


# ----------------------------------------------------------------------------
# safetensors, by hand: 8-byte little-endian header size, a JSON header of
# {name: {dtype, shape, data_offsets: [begin, end]}}, then the raw bytes.

_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
           "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool}


def read_safetensors(file):
    tensors = {}
    with open(file, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        start = 8 + n
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            f.seek(start + begin)
            raw = bytearray(f.read(end - begin))
            t = torch.frombuffer(raw, dtype=_DTYPES[info["dtype"]]) if raw else torch.empty(0, dtype=_DTYPES[info["dtype"]])
            tensors[name] = t.reshape(info["shape"])
    return tensors


def read_safetensors_dir(path):
    """All tensors of a checkpoint directory: one model.safetensors, or shards listed in the index."""
    path = pathlib.Path(path)
    index = path / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    tensors = {}
    for name in files:
        tensors.update(read_safetensors(path / name))
    return tensors


def write_safetensors(file, tensors):
    names = {v: k for k, v in _DTYPES.items()}
    header, offset = {}, 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)  # the spec pads the header so tensor data starts 8-byte aligned
    with atomic_write(file, "wb") as f:
        f.write(len(blob).to_bytes(8, "little") + blob)
        for t in tensors.values():
            f.write(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())


@torch.no_grad()
def mean_hidden_states(model, texts, batch_size=16, max_tokens=512):
    """(len(texts), n_embd) float32 CPU tensor: each text's final hidden states (model.features) averaged over
    its first max_tokens tokens. The paper embeds code this way with a pretrained model, to filter it (2.1)
    and to find near-copies of the benchmarks (5); filter.py and evaluate.py both use this one function.

    Batches hold texts of similar length (little padding); padding is masked out of attention and of the
    mean, so a text's vector does not depend on the batch it lands in."""
    tok, device = get_tokenizer(), next(model.parameters()).device
    ids = [x[:max_tokens] or [EOT] for x in tok.encode_ordinary_batch(list(texts), num_threads=os.cpu_count() or 1)]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = torch.empty(len(ids), model.config.n_embd)
    for start in range(0, len(ids), batch_size):
        rows = order[start:start + batch_size]
        T = max(len(ids[i]) for i in rows)
        idx = torch.tensor([ids[i] + [EOT] * (T - len(ids[i])) for i in rows], device=device)
        mask = torch.tensor([[True] * len(ids[i]) + [False] * (T - len(ids[i])) for i in rows], device=device)
        h = model.features(idx, attention_mask=mask).float() * mask[..., None]
        out[rows] = (h.sum(1) / mask.sum(1, keepdim=True)).cpu()
    return out


def load_model(path, device="cpu", dtype=None):
    """A Phi in eval mode from a Hugging Face directory, a training checkpoint, or a train out_dir."""
    path = pathlib.Path(path)
    if (path / "config.json").exists():
        model = Phi.from_pretrained(path)
    else:
        file = path / "ckpt.pt" if path.is_dir() else path
        if not file.exists():
            raise FileNotFoundError(f"no checkpoint at {path} (expected a HF directory, a .pt file or an out_dir with ckpt.pt)")
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
        model = Phi(PhiConfig(**ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
    return model.to(device=device, dtype=dtype).eval()


def main():
    parser = argparse.ArgumentParser(description="Build or load a phi-1 model and sample from it.")
    parser.add_argument("--ckpt", help="HF directory, training checkpoint or out_dir (default: a random tiny model)")
    parser.add_argument("--prompt", default="def fibonacci(n):\n")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = load_model(args.ckpt, args.device) if args.ckpt else Phi(PhiConfig.preset("tiny")).eval()
    print(f"{model.num_params():,} parameters")
    tok = get_tokenizer()
    idx = torch.tensor([tok.encode(args.prompt)], device=args.device)
    out = model.generate(idx, args.max_new_tokens, temperature=args.temperature, stop_strings=["\ndef ", "\nclass "])
    print(tok.decode(out[0].tolist()))


if __name__ == "__main__":
    main()
