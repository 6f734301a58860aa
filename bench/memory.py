"""
bench/memory.py: the GPU memory one rank needs to train phi-1 or phi-1-small, per micro-batch, with and
without gradient checkpointing: computed, term by term, from the tensors a training step holds.

    python bench/memory.py                            # the table in docs/training.md: 2048 tokens, fp16, dropout 0.1
    python bench/memory.py --micro-batch 8 16 32 --seq 1024

A rank holds, at the peak of a step (the start of a micro-batch's backward, when the gradients already exist):
  - weights, gradients and AdamW's two moments, all fp32: 16 bytes per parameter. DDP's gradient buckets
    cost nothing more, as train.py makes the gradients views into them (gradient_as_bucket_view);
  - the 16-bit copies of the linear layers' weights that autocast makes and the backward keeps;
  - the activations saved for the backward (activation_bytes_per_token below, counted tensor by tensor);
    with gradient checkpointing only each block's input, plus one block's activations recomputed;
  - the loss: model.linear_cross_entropy's fp32 lm_head gradient, and one chunk of logits at a time;
  - the backward's working set, taken as one more block's activations (an estimate).
This is eager PyTorch; torch.compile (train.py's default) keeps fewer activations (it recomputes cheap
elementwise results such as GELU and the dropout masks), so these figures are an upper bound for it. The
CUDA context (about 0.5 GiB) and the caching allocator's slack come on top. `python bench/gpu_check.py`
measures the real peak on a GPU (bench_train.py's peak memory column).
"""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the repo root: `python bench/memory.py` from anywhere

from model import PhiConfig

GiB = 2**30


def activation_bytes_per_token(c, mask_bytes=1):
    """Bytes one block saves for its backward, per token, in eager fp16/bf16 autocast with dropout, attention
    through our kernel. tests/test_train.py counts the saved tensors on a CPU and checks this sum exactly (there
    a dropout mask is the scaled noise in the 16-bit dtype, mask_bytes=2; CUDA keeps a bool mask, 1 byte)."""
    C, F, H = c.n_embd, c.n_inner, c.n_head
    return (4 * C + 8            # the block input x, fp32 (the residual stream), and LayerNorm's mean and 1/std
            + 4 * 2 * C          # LayerNorm's output cast to 16 bits once per consumer: q, k, v and fc1 each keep one
            + 4 * 2 * C          # q, k, v (rotated) and the attention output, kept by the kernel
            + 4 * H              # the kernel's log-sum-exp per head, fp32
            + 2 * C              # the attention output again, transposed for `dense`
            + 2 * F + 2 * F      # fc1's output (GELU's input) and GELU's output (fc2's input)
            + 2 * mask_bytes * C)  # the two residual dropout masks


def training_memory(c, micro_batch, seq, checkpointing, chunk=1024):
    """{term: bytes} of one rank's peak, for model config c and micro_batch sequences of seq tokens."""
    tokens = micro_batch * seq
    counts = parameter_counts(c)
    per_block = activation_bytes_per_token(c) * tokens
    if checkpointing:
        blocks = c.n_layer * (4 * c.n_embd) * tokens + per_block  # each block's fp32 input; one block recomputed
    else:
        blocks = c.n_layer * per_block
    return {
        "weights, grads, AdamW (fp32)": 16 * sum(counts.values()),
        "16-bit weight copies": 2 * counts["linear"],
        # + the final LayerNorm's fp32 input and statistics, and the loss's gradient for its 16-bit output
        "activations": blocks + tokens * (4 * c.n_embd + 8 + 2 * c.n_embd),
        "lm_head gradient (fp32, from the loss)": 4 * c.vocab_size * (c.n_embd + 1),
        # the larger of one chunk of logits (16-bit, then fp32; then the 16-bit gradient) at the end of the
        # forward, and the backward's gradients for one block's activations (estimated as their size)
        "transient": max(min(chunk, tokens) * c.vocab_size * 6, per_block),
    }


def parameter_counts(c):
    """Parameters of the linear layers inside the blocks and lm_head (autocast copies these), and the rest."""
    C, F, V, L = c.n_embd, c.n_inner, c.vocab_size, c.n_layer
    linear = L * (4 * (C * C + C) + (C * F + F) + (F * C + C)) + V * C + V
    return {"linear": linear, "embedding and LayerNorms": V * C + L * 2 * C + 2 * C}


def table(presets, micro_batches, seq):
    lines = [f"| model | micro-batch x {seq} | checkpointing | weights+grads+AdamW | activations | total (GiB) |",
             "|---|---:|---|---:|---:|---:|"]
    for name in presets:
        c = PhiConfig.preset(name)
        for mb in micro_batches:
            for ckpt in (False, True):
                m = training_memory(c, mb, seq, ckpt)
                lines.append(f"| {name} | {mb} | {'on' if ckpt else 'off'} | {m['weights, grads, AdamW (fp32)'] / GiB:.1f} | "
                             f"{m['activations'] / GiB:.1f} | **{sum(m.values()) / GiB:.1f}** |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["phi-1-small", "phi-1"])
    parser.add_argument("--micro-batch", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--seq", type=int, default=2048)
    args = parser.parse_args()
    c = PhiConfig.preset("phi-1")
    print(f"phi-1 per token and block: {activation_bytes_per_token(c):,} bytes saved for the backward "
          f"(eager, fp16, dropout); parameters {sum(parameter_counts(c).values()):,}\n")
    print(table(args.models, args.micro_batch, args.seq))


if __name__ == "__main__":
    main()
