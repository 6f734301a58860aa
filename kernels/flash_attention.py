"""
kernels/flash_attention.py: FlashAttention-2 in Triton, forward and backward, causal, with dropout.

    from kernels.flash_attention import flash_attention
    o = flash_attention(q, k, v, causal=True, dropout_p=0.1)   # q, k, v: (batch, heads, seq, head_dim)
    o.float().sum().backward()                                   # backward runs in Triton too

    python -m pytest -q tests/test_kernels.py    # on CPU the kernels run under TRITON_INTERPRET=1
    python kernels/bench.py                      # GPU: TFLOP/s next to torch's scaled_dot_product_attention

The math, for one (batch, head), with T query/key rows of head_dim D:

    S = scale * Q K^T            (T x T scores)
    P = softmax(S) row by row    (causal: S_ij = -inf for j > i)
    O = (P * Z) V                Z_ij = keep_ij / (1 - p), the dropout mask, keep_ij ~ Bernoulli(1 - p)

Forward (online softmax). S and P never exist in memory. A program owns BLOCK_M query
rows and streams over the keys BLOCK_N at a time, carrying per row a running max m,
a running sum l = sum_j exp(S_ij - m) and an unnormalized output acc = sum_j exp(S_ij - m) Z_ij V_j.
When a new block raises the max from m to m', everything summed so far is too big by
exp(m' - m), so l and acc are rescaled by alpha = exp(m - m') before the block is added.
At the end O = acc / l, and one number per row, the log-sum-exp L = m + log l, is saved.

Backward. With dO given, the chain rule through O = (P*Z)V and the softmax gives

    dV = (P*Z)^T dO
    dP = (dO V^T) * Z
    dS = P * (dP - delta),   delta_i = sum_j P_ij dP_ij = dO_i . O_i   (a row dot product: cheap)
    dQ = scale * dS K,       dK = scale * dS^T Q

and P is recomputed tile by tile as P_ij = exp(S_ij - L_i): no softmax statistics to redo.
dK, dV are summed over query rows and dQ over key rows, so one kernel owns a block of keys
(looping over queries) and another a block of queries (looping over keys). Each output tile
has exactly one writer: no atomics, and the same inputs give bit-identical gradients.

Memory: besides q, k, v, o and their gradients, only L and delta are stored, 2 floats per
row: O(T) per head instead of the O(T^2) of an attention matrix (at T = 2048 that is 16 KB
instead of 8 MB in float16 per head, and nothing for a dropout mask).

All exponentials are base 2 (exp2 is one GPU instruction): the kernels scale scores by
scale * log2(e) and keep L in base 2, which is the same softmax.
"""

import os

import torch
import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"  # Triton itself reads this when it is imported
LOG2E = 1.4426950408889634  # exp(x) = exp2(x * log2(e))
HEAD_DIMS = (16, 32, 64, 128)  # tl.arange needs powers of two, tl.dot at least 16
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _configs(gpu, interpret):
    """Tile-size candidates: a short autotune list on a GPU (tuned for the first call at each
    sequence length, then cached); one small tile under the interpreter, where NumPy runs the
    programs one by one and small tiles make tiny test shapes still loop over several blocks.
    Each entry is (BLOCK_M, BLOCK_N, num_warps, num_stages)."""
    rows = [interpret] if INTERPRET else gpu
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s) for m, n, w, s in rows]


# H100 choices in the spirit of FlashAttention-2 and Triton's tutorial: 128 query rows per
# program keep the tensor cores busy; 64-key blocks bound registers; 3-4 pipeline stages hide
# the loads of the next K/V block behind the current block's math. The forward needs
# BLOCK_M % BLOCK_N == 0, dK/dV needs BLOCK_N % BLOCK_M == 0 and dQ BLOCK_M % BLOCK_N == 0
# (the causal diagonal block is walked in sub-blocks). Each list holds, at head_dim 64 and 128,
# with and without dropout, candidates that compile for sm_90 without register spills
# (checked with Triton's ahead-of-time compiler and `ptxas -v`; dropout's Philox needs registers).
FWD_CONFIGS = _configs([(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (128, 32, 4, 4), (64, 64, 4, 4)],
                       interpret=(32, 16, 4, 1))
DKDV_CONFIGS = _configs([(64, 128, 8, 3), (32, 128, 8, 3), (32, 128, 4, 3), (32, 64, 8, 3), (32, 64, 4, 4)],
                        interpret=(16, 32, 4, 1))
DQ_CONFIGS = _configs([(128, 32, 4, 3), (128, 64, 8, 3), (64, 32, 4, 4), (64, 64, 4, 3)], interpret=(32, 16, 4, 1))
TUNE_KEY = ["T", "HEAD_DIM", "CAUSAL", "DROPOUT"]  # the autotuner also keys on the tensors' dtypes


@triton.jit
def _keep(seed, dropout_p, bh, rows, cols, T):
    """Dropout's keep mask for attention elements (rows, cols) of head bh: True with probability 1 - p.

    Philox (tl.rand) is counter-based: a number is a pure function of (seed, counter), with no
    state carried between calls. So the backward regenerates the forward's mask just by asking
    for the same counters, whatever its tiles' shapes and order. The counter is the element's
    flat index in the (batch*heads, T, T) attention tensor, in 64 bits so no two elements share one."""
    counter = (bh * T + rows) * T + cols
    return tl.rand(seed, counter) >= dropout_p


# ----------------------------------------------------------------------------- forward


@triton.jit
def _fwd_inner(acc, l_i, m_i, q, K, V, base, bh, lo, hi, offs_m, T, qk_scale, dropout_p, seed,
               HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DROPOUT: tl.constexpr,
               MASKED: tl.constexpr, BLOCK_N: tl.constexpr):
    """Fold keys [lo, hi) into one query block's running (acc, l, m). MASKED blocks may cross
    the causal diagonal or the end of the sequence; the others need no mask at all."""
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)  # lets the compiler assume aligned, vectorizable loads
        cols = start_n + offs_n
        kv_offs = base + cols[:, None] * HEAD_DIM + offs_d[None, :]
        if MASKED:  # rows past T read as zeros (finite scores), and are masked out below
            k = tl.load(K + kv_offs, mask=cols[:, None] < T, other=0.0)
            v = tl.load(V + kv_offs, mask=cols[:, None] < T, other=0.0)
        else:
            k = tl.load(K + kv_offs)
            v = tl.load(V + kv_offs)
        s = tl.dot(q, tl.trans(k)) * qk_scale  # (BLOCK_M, BLOCK_N) scores, in log2 units
        if MASKED:
            if CAUSAL:  # query i sees keys j <= i (this also hides keys past T from every real row)
                visible = offs_m[:, None] >= cols[None, :]
            else:  # only the tail block is masked: keys past T do not exist
                visible = cols[None, :] < T
            s = tl.where(visible, s, float("-inf"))  # exp2(-inf) = 0: out of the softmax
        # Online softmax. Every row has seen at least one visible key before a fully masked
        # tile can occur (key 0, or its own diagonal), so m_new is finite and no inf - inf appears.
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.math.exp2(s - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)  # how much the old terms shrink under the new max
        l_i = l_i * alpha + tl.sum(p, 1)  # the normalizer is the softmax's: taken before dropout
        if DROPOUT:
            keep = _keep(seed, dropout_p, bh, offs_m[:, None], cols[None, :], T)
            p = tl.where(keep, p * (1.0 / (1.0 - dropout_p)), 0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)  # tensor cores take 16-bit P, add in fp32
        m_i = m_new
    return acc, l_i, m_i


@triton.autotune(configs=FWD_CONFIGS, key=TUNE_KEY)
@triton.jit(do_not_specialize=["seed"])  # a new seed each step must not mean a new compile
def _fwd_kernel(Q, K, V, O, LSE, T, qk_scale, dropout_p, seed,
                HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DROPOUT: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Program (i, bh) computes output rows [i*BLOCK_M, (i+1)*BLOCK_M) of head bh = batch*H + head."""
    pid_m = tl.program_id(0)
    if CAUSAL:  # the last query blocks see the most keys: start them first, so the final wave is light
        pid_m = tl.num_programs(0) - 1 - pid_m
    bh = tl.program_id(1).to(tl.int64)  # 64-bit: bh * T * D can pass 2^31 for big batches
    base = bh * T * HEAD_DIM  # tensors are contiguous (B*H, T, D): where this head starts
    start_m = pid_m * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    q_offs = base + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
    q = tl.load(Q + q_offs, mask=offs_m[:, None] < T, other=0.0)  # stays in registers for the whole loop

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)  # running max, per row
    l_i = tl.zeros([BLOCK_M], tl.float32)  # running sum of exp2(s - m)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)  # running sum of exp2(s - m) * Z * V
    if CAUSAL:
        # Keys [0, start_m) lie below the diagonal for every row of the block: no mask.
        acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, K, V, base, bh, 0, start_m, offs_m, T, qk_scale,
                                   dropout_p, seed, HEAD_DIM, CAUSAL, DROPOUT, False, BLOCK_N)
        # Keys [start_m, start_m + BLOCK_M) cross the diagonal: masked. Keys beyond are never
        # loaded at all, which is where causal attention's 2x saving comes from.
        acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, K, V, base, bh, start_m, tl.minimum(start_m + BLOCK_M, T),
                                   offs_m, T, qk_scale, dropout_p, seed, HEAD_DIM, CAUSAL, DROPOUT, True, BLOCK_N)
    else:
        full = (T // BLOCK_N) * BLOCK_N  # whole blocks, then the ragged tail (if any) with a mask
        acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, K, V, base, bh, 0, full, offs_m, T, qk_scale,
                                   dropout_p, seed, HEAD_DIM, CAUSAL, DROPOUT, False, BLOCK_N)
        acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, K, V, base, bh, full, T, offs_m, T, qk_scale,
                                   dropout_p, seed, HEAD_DIM, CAUSAL, DROPOUT, True, BLOCK_N)

    o = acc / l_i[:, None]  # normalize once, at the end
    tl.store(O + q_offs, o.to(O.dtype.element_ty), mask=offs_m[:, None] < T)
    tl.store(LSE + bh * T + offs_m, m_i + tl.math.log2(l_i), mask=offs_m < T)  # base-2 log-sum-exp


# ----------------------------------------------------------------------------- backward


@triton.jit
def _delta_kernel(O, DO, DELTA, T, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr):
    """delta_i = dO_i . O_i, the softmax backward's row term, computed once up front so the
    dK/dV kernel (which sees each query block many times) just loads it."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    bh = tl.program_id(1).to(tl.int64)
    offs = bh * T * HEAD_DIM + rows[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    o = tl.load(O + offs, mask=rows[:, None] < T, other=0.0).to(tl.float32)
    do = tl.load(DO + offs, mask=rows[:, None] < T, other=0.0).to(tl.float32)
    tl.store(DELTA + bh * T + rows, tl.sum(o * do, 1), mask=rows < T)


# In both backward kernels, query rows or keys past T are loaded as zeros (q, k, v, dO, L and
# delta all 0). A query row past T then contributes exactly nothing: its P is exp2(0 - 0) = 1,
# finite, and its zero dO gives dV, dP and dS nothing. A key past T is different: its score is 0
# where the real scores may lie far below, and exp2(0 - L) overflows to inf once L < -128; inf
# times a zero then makes NaN. So both kernels mask the ragged key tail, causal or not, and no
# kernel ever computes an inf (the forward masks it too).


@triton.jit
def _dkdv_inner(dk, dv, k, v, Q, DO, LSE, DELTA, base, bh, lo, hi, offs_n, T, qk_scale, dropout_p, seed,
                HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DROPOUT: tl.constexpr, MASKED: tl.constexpr,
                BLOCK_M: tl.constexpr):
    """Add query rows [lo, hi) to one key block's dK, dV. The tiles are transposed, (keys, queries),
    so that sums over queries are plain matrix products into dK and dV."""
    offs_d = tl.arange(0, HEAD_DIM)
    for start_m in range(lo, hi, BLOCK_M):
        start_m = tl.multiple_of(start_m, BLOCK_M)
        rows = start_m + tl.arange(0, BLOCK_M)
        row_ok = rows < T
        q_offs = base + rows[:, None] * HEAD_DIM + offs_d[None, :]
        q = tl.load(Q + q_offs, mask=row_ok[:, None], other=0.0)
        do = tl.load(DO + q_offs, mask=row_ok[:, None], other=0.0)
        lse = tl.load(LSE + bh * T + rows, mask=row_ok, other=0.0)
        delta = tl.load(DELTA + bh * T + rows, mask=row_ok, other=0.0)
        # P^T recomputed from the saved log-sum-exp: exp2(s - L) is already normalized.
        sT = tl.dot(k, tl.trans(q)) * qk_scale
        if MASKED:
            if CAUSAL:  # key j only reached queries i >= j (and no real query reached a key past T)
                visible = rows[None, :] >= offs_n[:, None]
            else:  # keys past T do not exist
                visible = offs_n[:, None] < T
            sT = tl.where(visible, sT, float("-inf"))
        pT = tl.math.exp2(sT - lse[None, :])
        dpT = tl.dot(v, tl.trans(do))  # d(P*Z)^T = V dO^T
        if DROPOUT:  # the forward's mask, regenerated: same counters, transposed tile
            keep = _keep(seed, dropout_p, bh, rows[None, :], offs_n[:, None], T)
            pdT = tl.where(keep, pT * (1.0 / (1.0 - dropout_p)), 0.0)  # (P*Z)^T
            dpT = tl.where(keep, dpT * (1.0 / (1.0 - dropout_p)), 0.0)  # dP^T = d(P*Z)^T * Z^T
        else:
            pdT = pT
        dv += tl.dot(pdT.to(do.dtype), do)  # dV = (P*Z)^T dO
        dsT = pT * (dpT - delta[None, :])  # dS = P * (dP - delta): the softmax backward
        dk += tl.dot(dsT.to(q.dtype), q)  # dK = dS^T Q (times scale, applied once at the end)
    return dk, dv


@triton.autotune(configs=DKDV_CONFIGS, key=TUNE_KEY)
@triton.jit(do_not_specialize=["seed"])
def _dkdv_kernel(Q, K, V, DO, LSE, DELTA, DK, DV, T, sm_scale, qk_scale, dropout_p, seed,
                 HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DROPOUT: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Program (j, bh) owns keys [j*BLOCK_N, (j+1)*BLOCK_N) of head bh and alone writes their dK, dV."""
    bh = tl.program_id(1).to(tl.int64)
    base = bh * T * HEAD_DIM
    start_n = tl.program_id(0) * BLOCK_N
    offs_n = start_n + tl.arange(0, BLOCK_N)
    kv_offs = base + offs_n[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    k = tl.load(K + kv_offs, mask=offs_n[:, None] < T, other=0.0)  # K and V stay put; queries stream by
    v = tl.load(V + kv_offs, mask=offs_n[:, None] < T, other=0.0)
    dk = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    if CAUSAL:
        # Queries before start_n never see these keys: skipped. The diagonal block is masked,
        # the queries after it see every key of the block.
        dk, dv = _dkdv_inner(dk, dv, k, v, Q, DO, LSE, DELTA, base, bh, start_n, tl.minimum(start_n + BLOCK_N, T),
                             offs_n, T, qk_scale, dropout_p, seed, HEAD_DIM, CAUSAL, DROPOUT, True, BLOCK_M)
        dk, dv = _dkdv_inner(dk, dv, k, v, Q, DO, LSE, DELTA, base, bh, start_n + BLOCK_N, T,
                             offs_n, T, qk_scale, dropout_p, seed, HEAD_DIM, CAUSAL, DROPOUT, False, BLOCK_M)
    else:  # every query; only the block holding the ragged key tail needs the mask
        ragged = start_n + BLOCK_N > T
        dk, dv = _dkdv_inner(dk, dv, k, v, Q, DO, LSE, DELTA, base, bh, 0, tl.where(ragged, 0, T),
                             offs_n, T, qk_scale, dropout_p, seed, HEAD_DIM, CAUSAL, DROPOUT, False, BLOCK_M)
        dk, dv = _dkdv_inner(dk, dv, k, v, Q, DO, LSE, DELTA, base, bh, 0, tl.where(ragged, T, 0),
                             offs_n, T, qk_scale, dropout_p, seed, HEAD_DIM, CAUSAL, DROPOUT, True, BLOCK_M)
    tl.store(DK + kv_offs, (dk * sm_scale).to(DK.dtype.element_ty), mask=offs_n[:, None] < T)
    tl.store(DV + kv_offs, dv.to(DV.dtype.element_ty), mask=offs_n[:, None] < T)


@triton.jit
def _dq_inner(dq, q, do, lse, delta, K, V, base, bh, lo, hi, rows, T, qk_scale, dropout_p, seed,
              HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DROPOUT: tl.constexpr, MASKED: tl.constexpr,
              BLOCK_N: tl.constexpr):
    """Add keys [lo, hi) to one query block's dQ. MASKED blocks may cross the causal diagonal or
    the end of the sequence, as in the forward."""
    offs_d = tl.arange(0, HEAD_DIM)
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + tl.arange(0, BLOCK_N)
        kv_offs = base + cols[:, None] * HEAD_DIM + offs_d[None, :]
        k = tl.load(K + kv_offs, mask=cols[:, None] < T, other=0.0)
        v = tl.load(V + kv_offs, mask=cols[:, None] < T, other=0.0)
        s = tl.dot(q, tl.trans(k)) * qk_scale
        if MASKED:
            # A key past T was loaded as zeros: its score is 0, not -inf, and exp2(0 - L) overflows
            # to inf when the real scores are very negative (L < -128); inf * 0 would then make dQ
            # NaN. So the tail is masked like the causal diagonal, which hides it from every real row.
            if CAUSAL:
                visible = rows[:, None] >= cols[None, :]
            else:
                visible = cols[None, :] < T
            s = tl.where(visible, s, float("-inf"))
        p = tl.math.exp2(s - lse[:, None])  # P, recomputed
        dp = tl.dot(do, tl.trans(v))  # d(P*Z) = dO V^T
        if DROPOUT:
            keep = _keep(seed, dropout_p, bh, rows[:, None], cols[None, :], T)
            dp = tl.where(keep, dp * (1.0 / (1.0 - dropout_p)), 0.0)  # dP = d(P*Z) * Z
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k)  # dQ = dS K (times scale, at the end)
    return dq


@triton.autotune(configs=DQ_CONFIGS, key=TUNE_KEY)
@triton.jit(do_not_specialize=["seed"])
def _dq_kernel(Q, K, V, DO, LSE, DELTA, DQ, T, sm_scale, qk_scale, dropout_p, seed,
               HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DROPOUT: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Program (i, bh) owns query rows [i*BLOCK_M, (i+1)*BLOCK_M) of head bh and alone writes their dQ."""
    pid_m = tl.program_id(0)
    if CAUSAL:  # heaviest blocks first, as in the forward
        pid_m = tl.num_programs(0) - 1 - pid_m
    bh = tl.program_id(1).to(tl.int64)
    base = bh * T * HEAD_DIM
    start_m = pid_m * BLOCK_M
    rows = start_m + tl.arange(0, BLOCK_M)
    q_offs = base + rows[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    q = tl.load(Q + q_offs, mask=rows[:, None] < T, other=0.0)
    do = tl.load(DO + q_offs, mask=rows[:, None] < T, other=0.0)
    lse = tl.load(LSE + bh * T + rows, mask=rows < T, other=0.0)
    delta = tl.load(DELTA + bh * T + rows, mask=rows < T, other=0.0)
    dq = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    if CAUSAL:  # keys left of the block unmasked, the diagonal block masked, nothing to the right
        unmasked, masked_end = start_m, tl.minimum(start_m + BLOCK_M, T)
    else:  # whole key blocks unmasked, then the ragged tail (if any) masked
        unmasked, masked_end = (T // BLOCK_N) * BLOCK_N, T
    dq = _dq_inner(dq, q, do, lse, delta, K, V, base, bh, 0, unmasked, rows, T, qk_scale,
                   dropout_p, seed, HEAD_DIM, CAUSAL, DROPOUT, False, BLOCK_N)
    dq = _dq_inner(dq, q, do, lse, delta, K, V, base, bh, unmasked, masked_end, rows, T, qk_scale,
                   dropout_p, seed, HEAD_DIM, CAUSAL, DROPOUT, True, BLOCK_N)
    tl.store(DQ + q_offs, (dq * sm_scale).to(DQ.dtype.element_ty), mask=rows[:, None] < T)


# ----------------------------------------------------------------------------- host side


def _empty(shape, like, dtype=None):
    """Every buffer a kernel fills comes from here, uninitialized. The tests swap in a
    NaN-filled allocator to prove that the kernels write every element."""
    return torch.empty(shape, dtype=dtype or like.dtype, device=like.device)


def _forward(q, k, v, causal, dropout_p, sm_scale, seed):
    """Launch the forward on contiguous (B, H, T, D) tensors. Returns o and the base-2 log-sum-exp (B*H, T)."""
    B, H, T, D = q.shape
    o = _empty(q.shape, q)
    lse = _empty((B * H, T), q, torch.float32)
    grid = lambda meta: (triton.cdiv(T, meta["BLOCK_M"]), B * H)  # noqa: E731
    _fwd_kernel[grid](q, k, v, o, lse, T, sm_scale * LOG2E, dropout_p, seed,
                      HEAD_DIM=D, CAUSAL=causal, DROPOUT=dropout_p > 0)
    return o, lse


def _backward(do, q, k, v, o, lse, causal, dropout_p, sm_scale, seed):
    """Launch the three backward kernels. Returns dq, dk, dv."""
    B, H, T, D = q.shape
    do = do.contiguous()
    delta = _empty((B * H, T), q, torch.float32)
    _delta_kernel[(triton.cdiv(T, 64), B * H)](o, do, delta, T, HEAD_DIM=D, BLOCK_M=64)
    dq, dk, dv = _empty(q.shape, q), _empty(q.shape, q), _empty(q.shape, q)
    args = (T, sm_scale, sm_scale * LOG2E, dropout_p, seed)
    meta = dict(HEAD_DIM=D, CAUSAL=causal, DROPOUT=dropout_p > 0)
    _dkdv_kernel[lambda m: (triton.cdiv(T, m["BLOCK_N"]), B * H)](q, k, v, do, lse, delta, dk, dv, *args, **meta)
    _dq_kernel[lambda m: (triton.cdiv(T, m["BLOCK_M"]), B * H)](q, k, v, do, lse, delta, dq, *args, **meta)
    return dq, dk, dv


class _FlashAttention(torch.autograd.Function):
    """Saves q, k, v, o and the log-sum-exp; the backward recomputes everything else."""

    @staticmethod
    def forward(ctx, q, k, v, causal, dropout_p, sm_scale, seed):
        o, lse = _forward(q, k, v, causal, dropout_p, sm_scale, seed)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.args = (causal, dropout_p, sm_scale, seed)  # the seed is all the backward needs of the mask
        return o

    @staticmethod
    def backward(ctx, do):
        dq, dk, dv = _backward(do, *ctx.saved_tensors, *ctx.args)
        return dq, dk, dv, None, None, None, None


def _check(q, k, v, dropout_p):
    """One-line errors for inputs the kernels cannot take."""
    shapes = f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(f"flash_attention: q, k, v must share one (batch, heads, seq, head_dim) shape, got {shapes}")
    if q.shape[-1] not in HEAD_DIMS:
        raise ValueError(f"flash_attention: head_dim must be one of {HEAD_DIMS}, got {q.shape[-1]}")
    if not q.dtype == k.dtype == v.dtype or q.dtype not in DTYPES:
        raise ValueError(f"flash_attention: q, k, v must share a dtype among {DTYPES}, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not q.device == k.device == v.device:
        raise ValueError(f"flash_attention: q, k, v are on different devices: {q.device}, {k.device}, {v.device}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"flash_attention: dropout_p must be in [0, 1), got {dropout_p}")
    if not (q.is_cuda or INTERPRET):
        raise RuntimeError("flash_attention: needs CUDA tensors (or TRITON_INTERPRET=1 set before importing triton)")


def flash_attention(q, k, v, causal=True, dropout_p=0.0, softmax_scale=None, seed=None):
    """softmax(q k^T * softmax_scale), causally masked if `causal`, with dropout, times v.

    q, k, v: (batch, heads, seq, head_dim), float16 / bfloat16 / float32 (float32 matmuls use
    TF32 on a GPU), head_dim in HEAD_DIMS, any seq. Returns the same shape and dtype;
    differentiable. softmax_scale defaults to 1/sqrt(head_dim). dropout_p is applied as given:
    pass 0.0 in eval mode. seed fixes the dropout mask; None draws one from torch's default
    generator, so torch.manual_seed makes runs repeat. Non-contiguous inputs are copied.
    """
    _check(q, k, v, dropout_p)
    if softmax_scale is None:
        softmax_scale = q.shape[-1] ** -0.5
    if seed is None:
        seed = int(torch.randint(2**31 - 1, (1,)).item()) if dropout_p > 0 else 0
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    return _FlashAttention.apply(q, k, v, causal, float(dropout_p), float(softmax_scale), int(seed))
