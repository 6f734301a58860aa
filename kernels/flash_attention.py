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

(p as the kernels use it is rounded to the nearest 1/256; see "dropout" below.)

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

The dropout mask is never stored either: each kernel regenerates it from a seed (a one-element
device tensor, so drawing it never waits for the GPU) with the Philox generator, 16 keys per
call. torch.compile sees the launches as two custom ops (forward, backward): no graph break.
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
    """Tile-size candidates: a short autotune list on a GPU; one small tile under the interpreter,
    where NumPy runs the programs one by one and small tiles make tiny test shapes still loop over
    several blocks. Each entry is (BLOCK_M, BLOCK_N, num_warps, num_stages)."""
    rows = [interpret] if INTERPRET else gpu
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s) for m, n, w, s in rows]


# H100 choices in the spirit of FlashAttention-2 and Triton's tutorial: 128 query rows per
# program keep the tensor cores busy; 64-key blocks bound registers; 3-4 pipeline stages hide
# the loads of the next K/V block behind the current block's math. The tile rules each kernel
# needs are checked at compile time (tl.static_assert, in _check_tiles and the kernels). Each list
# holds, for sm_90 (H100) and sm_80 (A100), at head_dim 64, with and without dropout, candidates
# that compile without register spills (kernels/compile_check.py: Triton's compiler and
# `ptxas -v`, no GPU needed). The 8-warp x 32-key tiles are there for the A100, where each of
# the other dQ tiles spills with dropout.
FWD_CONFIGS = _configs([(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (128, 32, 4, 4), (128, 32, 8, 3),
                        (64, 64, 4, 4)], interpret=(32, 16, 4, 1))
DKDV_CONFIGS = _configs([(64, 128, 8, 3), (32, 128, 8, 3), (32, 128, 4, 3), (32, 64, 8, 3), (32, 64, 4, 4)],
                        interpret=(16, 32, 4, 1))
DQ_CONFIGS = _configs([(128, 32, 4, 3), (128, 32, 8, 3), (128, 64, 8, 3), (64, 32, 4, 4), (64, 32, 8, 3),
                       (64, 64, 4, 3)], interpret=(32, 16, 4, 1))


def _autotune(configs):
    """Tune a kernel once per T_BUCKET (the sequence length rounded up to a power of two), head_dim,
    causal, dropout and dtype: not once per exact length, which made every new prefill length of an
    evaluation pay 0.6 s or more per kernel (issue 16). cache_results keeps the choice in Triton's
    cache directory, so later processes (a resumed run, each evaluation) reuse it instead of
    re-timing: the same tiles, hence the same accumulation order, as long as that cache is kept."""
    return triton.autotune(configs=configs, key=["T_BUCKET", "HEAD_DIM", "CAUSAL", "DROPOUT"], cache_results=True)


@triton.jit
def _check_tiles(BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr):
    """Compile-time guards shared by the three attention kernels: a config breaking one fails to compile."""
    tl.static_assert(BLOCK_M >= 16 and BLOCK_N >= 16 and HEAD_DIM >= 16, "tl.dot needs tiles of at least 16")
    tl.static_assert((BLOCK_M & (BLOCK_M - 1)) == 0 and (BLOCK_N & (BLOCK_N - 1)) == 0
                     and (HEAD_DIM & (HEAD_DIM - 1)) == 0, "tl.arange needs powers of two")


# ----------------------------------------------------------------------------- dropout
#
# Dropout needs one random decision per attention element, kept with probability 1 - p, and the
# backward must see the very same decisions without anything being stored. Philox (Salmon et al.,
# 2011; the generator behind tl.randint4x, cuRAND and FlashAttention) makes that possible: it is
# counter-based, a pure function (seed, counter) -> four random 32-bit words with no state between
# calls, so any kernel regenerates an element's bits by asking for the same counter, whatever the
# shape and order of its tiles.
#
# One call is 10 rounds of two 32x32-bit multiplies and a few xors, about 100 instructions. Paid
# for every element (one tl.rand each), that cost more than the attention math around it. A keep
# decision needs far fewer than 32 bits, so, as FlashAttention-2 does, one byte decides one element,
# and one call (4 words x 4 bytes) serves 16 consecutive keys of a row. Compiled for sm_90 (fp16,
# head_dim 64, causal, the 128 x 64 forward tile with 8 warps), dropout now adds 1040 SASS
# instructions to the forward's 1392, where one call per element added 4360 (kernels/README.md).
#
# The threshold. A random byte u is uniform on {0, 1, ..., 255}. Drop the element when u < t:
#
#     P(drop) = t / 256      exactly, for an integer t in [1, 255].
#
# t = round(256 p) makes the rate actually used p' = t / 256, p rounded to the nearest 1/256 (an
# error of at most 1/512), and kept values are scaled by 1 / (1 - p') = 256 / (256 - t), so the
# expected mask E[Z] is exactly 1 at the rate actually used. phi-1's p = 0.1 becomes t = 26,
# p' = 0.1015625. (FlashAttention-2 keeps u <= floor(255 (1 - p)) = 229: the same rate 26/256, but
# it scales by 1 / (1 - p), so its E[Z] = (230/256) / 0.9 = 0.998, 0.17% low.)
#
# The counter. Row i of head bh (= batch * H + head) splits its keys into groups of 16 consecutive
# keys; group g = j // 16 draws with counter (bh * T + i) * ceil(T / 16) + g, one per group of every
# row of every head, and key j takes byte j % 4 of word (j % 16) // 4. Key tiles start at multiples
# of BLOCK_N, itself a multiple of 16, so a tile always holds whole groups: the forward's (query,
# key) tiles and the backward's differently shaped, transposed ones draw identical bits.


def dropout_threshold(p):
    """The kernels' integer threshold t = round(256 p) (see above): they drop at rate t / 256."""
    return int(p * 256 + 0.5)


@triton.jit
def _keep(seed, threshold, bh, rows, start_n, T, BLOCK_N: tl.constexpr):
    """Dropout's keep mask for query rows `rows` and keys [start_n, start_n + BLOCK_N) of head bh:
    a (len(rows), BLOCK_N) tile, True with probability 1 - threshold / 256."""
    KEYS_PER_DRAW: tl.constexpr = 16  # one Philox call: 4 words x 4 bytes, one byte per key
    tl.static_assert(BLOCK_N % KEYS_PER_DRAW == 0, "a key tile must hold whole groups of 16 keys")
    groups = start_n // KEYS_PER_DRAW + tl.arange(0, BLOCK_N // KEYS_PER_DRAW)
    counter = (bh * T + rows[:, None]) * tl.cdiv(T, KEYS_PER_DRAW) + groups[None, :]  # int64, as bh is
    w0, w1, w2, w3 = tl.randint4x(seed, counter)  # four random 32-bit words per group of 16 keys
    # interleave(a, b) alternates the columns of a and b: interleave(w0, w2) reads w0 w2 w0 w2 ...,
    # interleave(w1, w3) reads w1 w3 ..., and interleaving those two gives w0 w1 w2 w3 per group, along
    # the keys. The same again puts bytes 0 1 2 3 of each word side by side: 16 bytes per group.
    words = tl.interleave(tl.interleave(w0, w2), tl.interleave(w1, w3))  # (rows, BLOCK_N / 4)
    u = tl.interleave(tl.interleave(words & 0xFF, (words >> 16) & 0xFF),
                      tl.interleave((words >> 8) & 0xFF, words >> 24))  # (rows, BLOCK_N): one byte per key
    return u >= threshold


@triton.jit
def _drop(x, keep, threshold):
    """x * Z: kept elements scaled by 1 / (1 - t/256) = 256 / (256 - t), dropped ones zeroed."""
    return tl.where(keep, x * (256.0 / (256 - threshold)), 0.0)


# ----------------------------------------------------------------------------- forward


@triton.jit
def _fwd_inner(acc, l_i, m_i, q, K, V, base, bh, lo, hi, offs_m, T, qk_scale, seed, threshold,
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
        if DROPOUT:  # zero the dropped terms; the 1/(1-p') of the kept ones is applied once, at the end
            p = tl.where(_keep(seed, threshold, bh, offs_m, start_n, T, BLOCK_N), p, 0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)  # tensor cores take 16-bit P, add in fp32
        m_i = m_new
    return acc, l_i, m_i


@_autotune(FWD_CONFIGS)
@triton.jit(do_not_specialize=["threshold", "T_BUCKET"])  # a new rate or length must not mean a new compile
def _fwd_kernel(Q, K, V, O, LSE, SEED, T, T_BUCKET, qk_scale, threshold,
                HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DROPOUT: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Program (i, bh) computes output rows [i*BLOCK_M, (i+1)*BLOCK_M) of head bh = batch*H + head.
    T_BUCKET is read by the autotuner only. SEED points to the dropout seed (None without dropout):
    read here on the GPU, so drawing it never waits for the GPU (no .item(), no host sync)."""
    _check_tiles(BLOCK_M, BLOCK_N, HEAD_DIM)
    tl.static_assert(BLOCK_M % BLOCK_N == 0, "the diagonal block is walked BLOCK_N keys at a time")
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
    seed = tl.load(SEED) if DROPOUT else 0

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)  # running max, per row
    l_i = tl.zeros([BLOCK_M], tl.float32)  # running sum of exp2(s - m)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)  # running sum of exp2(s - m) * keep * V
    if CAUSAL:
        # Keys [0, start_m) lie below the diagonal for every row of the block: no mask. Keys
        # [start_m, start_m + BLOCK_M) cross it: masked. Keys beyond are never loaded at all,
        # which is where causal attention's 2x saving comes from.
        unmasked, masked_end = start_m, tl.minimum(start_m + BLOCK_M, T)
    else:  # whole key blocks, then the ragged tail (if any) with a mask
        unmasked, masked_end = (T // BLOCK_N) * BLOCK_N, T
    acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, K, V, base, bh, 0, unmasked, offs_m, T, qk_scale,
                               seed, threshold, HEAD_DIM, CAUSAL, DROPOUT, False, BLOCK_N)
    acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, K, V, base, bh, unmasked, masked_end, offs_m, T, qk_scale,
                               seed, threshold, HEAD_DIM, CAUSAL, DROPOUT, True, BLOCK_N)

    o = acc / l_i[:, None]  # normalize once, at the end
    if DROPOUT:  # the kept terms' 1/(1-p') = 256/(256-t): once per output rather than once per score
        o = o * (256.0 / (256 - threshold))
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
def _dkdv_inner(dk, dv, k, v, Q, DO, LSE, DELTA, base, bh, lo, hi, start_n, T, qk_scale, seed, threshold,
                HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DROPOUT: tl.constexpr, MASKED: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Add query rows [lo, hi) to the dK, dV of keys [start_n, start_n + BLOCK_N). The tiles are
    transposed, (keys, queries), so that sums over queries are plain matrix products into dK and dV."""
    offs_n = start_n + tl.arange(0, BLOCK_N)
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
        if DROPOUT:  # the forward's mask, regenerated: the same (query, key) tile of bits, transposed
            keep = tl.trans(_keep(seed, threshold, bh, rows, start_n, T, BLOCK_N))
            pdT = _drop(pT, keep, threshold)  # (P*Z)^T
            dpT = _drop(dpT, keep, threshold)  # dP^T = d(P*Z)^T * Z^T
        else:
            pdT = pT
        dv += tl.dot(pdT.to(do.dtype), do)  # dV = (P*Z)^T dO
        dsT = pT * (dpT - delta[None, :])  # dS = P * (dP - delta): the softmax backward
        dk += tl.dot(dsT.to(q.dtype), q)  # dK = dS^T Q (times scale, applied once at the end)
    return dk, dv


@_autotune(DKDV_CONFIGS)
@triton.jit(do_not_specialize=["threshold", "T_BUCKET"])
def _dkdv_kernel(Q, K, V, DO, LSE, DELTA, DK, DV, SEED, T, T_BUCKET, sm_scale, qk_scale, threshold,
                 HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DROPOUT: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Program (j, bh) owns keys [j*BLOCK_N, (j+1)*BLOCK_N) of head bh and alone writes their dK, dV."""
    _check_tiles(BLOCK_M, BLOCK_N, HEAD_DIM)
    tl.static_assert(BLOCK_N % BLOCK_M == 0, "the diagonal block is walked BLOCK_M queries at a time")
    bh = tl.program_id(1).to(tl.int64)
    base = bh * T * HEAD_DIM
    start_n = tl.program_id(0) * BLOCK_N
    offs_n = start_n + tl.arange(0, BLOCK_N)
    kv_offs = base + offs_n[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    k = tl.load(K + kv_offs, mask=offs_n[:, None] < T, other=0.0)  # K and V stay put; queries stream by
    v = tl.load(V + kv_offs, mask=offs_n[:, None] < T, other=0.0)
    seed = tl.load(SEED) if DROPOUT else 0
    dk = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    if CAUSAL:
        # Queries before start_n never see these keys: skipped. The diagonal block is masked,
        # the queries after it see every key of the block.
        masked_lo, masked_hi = start_n, tl.minimum(start_n + BLOCK_N, T)
        unmasked_lo, unmasked_hi = start_n + BLOCK_N, T
    else:  # every query; only the block holding the ragged key tail needs the mask
        ragged = start_n + BLOCK_N > T
        masked_lo, masked_hi = 0, tl.where(ragged, T, 0)
        unmasked_lo, unmasked_hi = 0, tl.where(ragged, 0, T)
    dk, dv = _dkdv_inner(dk, dv, k, v, Q, DO, LSE, DELTA, base, bh, masked_lo, masked_hi, start_n, T, qk_scale,
                         seed, threshold, HEAD_DIM, CAUSAL, DROPOUT, True, BLOCK_M, BLOCK_N)
    dk, dv = _dkdv_inner(dk, dv, k, v, Q, DO, LSE, DELTA, base, bh, unmasked_lo, unmasked_hi, start_n, T, qk_scale,
                         seed, threshold, HEAD_DIM, CAUSAL, DROPOUT, False, BLOCK_M, BLOCK_N)
    tl.store(DK + kv_offs, (dk * sm_scale).to(DK.dtype.element_ty), mask=offs_n[:, None] < T)
    tl.store(DV + kv_offs, dv.to(DV.dtype.element_ty), mask=offs_n[:, None] < T)


@triton.jit
def _dq_inner(dq, q, do, lse, delta, K, V, base, bh, lo, hi, rows, T, qk_scale, seed, threshold,
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
            if CAUSAL:
                visible = rows[:, None] >= cols[None, :]
            else:
                visible = cols[None, :] < T
            s = tl.where(visible, s, float("-inf"))
        p = tl.math.exp2(s - lse[:, None])  # P, recomputed
        dp = tl.dot(do, tl.trans(v))  # d(P*Z) = dO V^T
        if DROPOUT:
            dp = _drop(dp, _keep(seed, threshold, bh, rows, start_n, T, BLOCK_N), threshold)  # dP = d(P*Z) * Z
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k)  # dQ = dS K (times scale, at the end)
    return dq


@_autotune(DQ_CONFIGS)
@triton.jit(do_not_specialize=["threshold", "T_BUCKET"])
def _dq_kernel(Q, K, V, DO, LSE, DELTA, DQ, SEED, T, T_BUCKET, sm_scale, qk_scale, threshold,
               HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DROPOUT: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Program (i, bh) owns query rows [i*BLOCK_M, (i+1)*BLOCK_M) of head bh and alone writes their dQ."""
    _check_tiles(BLOCK_M, BLOCK_N, HEAD_DIM)
    tl.static_assert(BLOCK_M % BLOCK_N == 0, "the diagonal block is walked BLOCK_N keys at a time")
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
    seed = tl.load(SEED) if DROPOUT else 0
    dq = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    if CAUSAL:  # keys left of the block unmasked, the diagonal block masked, nothing to the right
        unmasked, masked_end = start_m, tl.minimum(start_m + BLOCK_M, T)
    else:  # whole key blocks unmasked, then the ragged tail (if any) masked
        unmasked, masked_end = (T // BLOCK_N) * BLOCK_N, T
    dq = _dq_inner(dq, q, do, lse, delta, K, V, base, bh, 0, unmasked, rows, T, qk_scale,
                   seed, threshold, HEAD_DIM, CAUSAL, DROPOUT, False, BLOCK_N)
    dq = _dq_inner(dq, q, do, lse, delta, K, V, base, bh, unmasked, masked_end, rows, T, qk_scale,
                   seed, threshold, HEAD_DIM, CAUSAL, DROPOUT, True, BLOCK_N)
    tl.store(DQ + q_offs, (dq * sm_scale).to(DQ.dtype.element_ty), mask=rows[:, None] < T)


# ----------------------------------------------------------------------------- host side
#
# The two launches are registered as torch custom ops, with a "fake" version that only states the
# output shapes. torch.compile then traces flash_attention, the seed's torch.randint included, into
# its graph and calls the kernels as opaque ops: no graph break. (An autograd.Function whose seed
# came from .item() broke the graph at every layer: issue 16 counted 27 forward and 21 backward
# graphs per step for a 4-layer model.)


def _empty(shape, like, dtype=None):
    """Every buffer a kernel fills comes from here, uninitialized. The tests swap in a
    NaN-filled allocator to prove that the kernels write every element."""
    return torch.empty(shape, dtype=dtype or like.dtype, device=like.device)


@torch.library.custom_op("phi1::flash_attention_forward", mutates_args=())
def _forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, seed: torch.Tensor | None, causal: bool,
             threshold: int, sm_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the forward on contiguous (B, H, T, D) tensors. Returns o and the base-2 log-sum-exp (B*H, T)."""
    B, H, T, D = q.shape
    o = _empty(q.shape, q)
    lse = _empty((B * H, T), q, torch.float32)
    grid = lambda meta: (triton.cdiv(T, meta["BLOCK_M"]), B * H)  # noqa: E731
    _fwd_kernel[grid](q, k, v, o, lse, seed, T, triton.next_power_of_2(T), sm_scale * LOG2E, threshold,
                      HEAD_DIM=D, CAUSAL=causal, DROPOUT=threshold > 0)
    return o, lse


@_forward.register_fake
def _(q, k, v, seed, causal, threshold, sm_scale):
    B, H, T, D = q.shape
    return torch.empty_like(q), q.new_empty((B * H, T), dtype=torch.float32)


@torch.library.custom_op("phi1::flash_attention_backward", mutates_args=())
def _backward(do: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor,
              lse: torch.Tensor, seed: torch.Tensor | None, causal: bool, threshold: int,
              sm_scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the three backward kernels. Returns dq, dk, dv."""
    B, H, T, D = q.shape
    do = do.contiguous()
    delta = _empty((B * H, T), q, torch.float32)
    _delta_kernel[(triton.cdiv(T, 64), B * H)](o, do, delta, T, HEAD_DIM=D, BLOCK_M=64)
    dq, dk, dv = _empty(q.shape, q), _empty(q.shape, q), _empty(q.shape, q)
    args = (seed, T, triton.next_power_of_2(T), sm_scale, sm_scale * LOG2E, threshold)
    meta = dict(HEAD_DIM=D, CAUSAL=causal, DROPOUT=threshold > 0)
    _dkdv_kernel[lambda m: (triton.cdiv(T, m["BLOCK_N"]), B * H)](q, k, v, do, lse, delta, dk, dv, *args, **meta)
    _dq_kernel[lambda m: (triton.cdiv(T, m["BLOCK_M"]), B * H)](q, k, v, do, lse, delta, dq, *args, **meta)
    return dq, dk, dv


@_backward.register_fake
def _(do, q, k, v, o, lse, seed, causal, threshold, sm_scale):
    return torch.empty_like(q), torch.empty_like(q), torch.empty_like(q)


def _save_for_backward(ctx, inputs, output):
    """Keep q, k, v, o, the log-sum-exp and the seed tensor: the backward recomputes everything else,
    and the very same seed regenerates the very same dropout mask."""
    q, k, v, seed, causal, threshold, sm_scale = inputs
    o, lse = output
    ctx.save_for_backward(q, k, v, o, lse, seed)
    ctx.args = (causal, threshold, sm_scale)
    ctx.mark_non_differentiable(lse)


def _flash_backward(ctx, do, _):
    """Gradients for q, k, v (the log-sum-exp output has none); the other inputs are not tensors."""
    q, k, v, o, lse, seed = ctx.saved_tensors
    dq, dk, dv = _backward(do, q, k, v, o, lse, seed, *ctx.args)
    return dq, dk, dv, None, None, None, None


_forward.register_autograd(_flash_backward, setup_context=_save_for_backward)


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
    if dropout_p != 0 and not 1 <= dropout_threshold(dropout_p) <= 255:
        raise ValueError(f"flash_attention: dropout_p must be 0 or in [1/512, 511/512) (the kernels drop "
                         f"in steps of 1/256), got {dropout_p}")
    if not (q.is_cuda or INTERPRET):
        raise RuntimeError("flash_attention: needs CUDA tensors (or TRITON_INTERPRET=1 set before importing triton)")


def flash_attention(q, k, v, causal=True, dropout_p=0.0, softmax_scale=None, seed=None):
    """softmax(q k^T * softmax_scale), causally masked if `causal`, with dropout, times v.

    q, k, v: (batch, heads, seq, head_dim), float16 / bfloat16 / float32 (float32 matmuls use
    TF32 on a GPU), head_dim in HEAD_DIMS, any seq. Returns the same shape and dtype;
    differentiable. softmax_scale defaults to 1/sqrt(head_dim). dropout_p is applied as given
    (pass 0.0 in eval mode), rounded to the nearest 1/256 with matching scaling (see "dropout" above).
    seed fixes the dropout mask: an int, or an int64 tensor of one element on q's device (under
    torch.compile pass a tensor: a changing int would recompile). None draws one on the device
    from torch's generator, so torch.manual_seed makes runs repeat. Non-contiguous inputs are copied.
    """
    _check(q, k, v, dropout_p)
    threshold = dropout_threshold(dropout_p)
    if softmax_scale is None:
        softmax_scale = q.shape[-1] ** -0.5
    if threshold == 0:
        seed = None  # no dropout: nothing to draw
    elif seed is None:  # drawn on the device, by a kernel: nothing waits for the GPU
        seed = torch.randint(2**62, (1,), dtype=torch.int64, device=q.device)
    elif not isinstance(seed, torch.Tensor):
        seed = torch.tensor([seed], dtype=torch.int64, device=q.device)
    o, _ = _forward(q.contiguous(), k.contiguous(), v.contiguous(), seed, causal, threshold, float(softmax_scale))
    return o
