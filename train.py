"""
train.py: pretrain phi-1-base and finetune it into phi-1, with plain torch.distributed DDP.

With no arguments this is the paper's phi-1-base pretraining (section 2.3): phi-1 (1.3B), sequences of
2048 tokens, 1024 sequences per step, AdamW at lr 1e-3 with 750 warmup steps then linear decay,
weight decay 0.1, attention and residual dropout 0.1, fp16 with dynamic loss scaling, 36,000 steps.

    # the paper on 8 GPUs: phi-1-base on CodeTextbook, then phi-1 on CodeExercises
    torchrun --nproc_per_node=8 train.py
    torchrun --nproc_per_node=8 train.py config/finetune.py

    # one GPU: the same recipe (128 accumulation steps), or the 350M phi-1-small
    python train.py
    python train.py config/small_gpu.py

    # several nodes: run this on every node, NODE_RANK = 0, 1, ...; HEAD = node 0's address
    torchrun --nnodes=4 --nproc_per_node=8 --node_rank=$NODE_RANK --rdzv_endpoint=$HEAD:29500 train.py

    # a laptop CPU: the tiny model on this Python's own source code, in minutes (DDP on gloo with torchrun)
    python prepare.py --out data/stdlib
    python train.py config/tiny_cpu.py
    torchrun --standalone --nproc_per_node=2 train.py config/tiny_cpu.py

    # continue after a crash, a kill, Ctrl-C or a SIGTERM (which saves the step in flight first): the same
    # command plus init_from=resume, the same run step for step (bit-exact on a CPU; docs/training.md: on a GPU)
    torchrun --nproc_per_node=8 train.py --init_from=resume

Settings: `python train.py [config/FILE.py ...] [--key=value ...]`, later ones win; `--help` lists the keys.
out_dir receives ckpt.pt (the latest), ckpt_{iter}.pt (every keep_every steps), log.jsonl (one JSON
object per logged step and per evaluation) and loss.svg. Only rank 0 prints and writes.
"""

import ast
import contextlib
import ctypes
import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import resource
import signal
import sys
import time
import types

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from model import Phi, PhiConfig
from prepare import atomic_write, duration, iter_jsonl

# -----------------------------------------------------------------------------
# Settings. The defaults are phi-1-base's pretraining (paper, section 2.3). The comment on each line
# is its --help text.
data_dir = "data/codetextbook"   # train.bin, val.bin and meta.json from prepare.py
out_dir = "out/phi-1-base"       # checkpoints, log.jsonl and loss.svg go here
init_from = "scratch"            # scratch | resume (out_dir/ckpt.pt) | a checkpoint or out_dir (weights only) | a Hugging Face dir
model = "phi-1"                  # model preset when init_from=scratch: phi-1 | phi-1-small | tiny
block_size = 2048                # tokens per training sequence (paper: 2048)
dropout = 0.1                    # attention and residual dropout (paper: 0.1)
attention = "auto"               # auto (our Triton kernel on CUDA, SDPA elsewhere) | triton | sdpa
gradient_checkpointing = False   # recompute blocks in backward: ~1/3 more compute; phi-1, micro-batch 8: ~30 GiB, not ~56
batch_size = 1024                # sequences per optimizer step, all ranks together (paper: 1024)
micro_batch_size = 8             # sequences per forward/backward on one rank; gradient accumulation makes up the rest
max_iters = 36000                # optimizer steps (paper: 36,000; phi-1-base is the checkpoint at 24,000)
learning_rate = 1e-3             # peak learning rate (paper: 1e-3)
min_lr = 0.0                     # learning rate at the end of the linear decay
warmup_iters = 750               # steps of linear warmup (paper: 750)
lr_decay_iters = 0               # the linear decay reaches min_lr here; 0 = at max_iters
weight_decay = 0.1               # AdamW weight decay of weight matrices; biases and LayerNorms get none (paper: 0.1)
beta1 = 0.9                      # AdamW betas and eps: phi-1's paper gives none; phi-1.5's report gives 0.9, 0.98, 1e-7
beta2 = 0.98                     # AdamW beta2
eps = 1e-7                       # AdamW epsilon
grad_clip = 1.0                  # clip the global gradient norm to this (after fp16 unscaling); 0 = no clipping
dtype = "float16"                # float16 (paper: fp16 with dynamic loss scaling) | bfloat16 | float32
device = "auto"                  # auto (cuda when present, else cpu) | cuda | cpu
compile = True                   # torch.compile each block (one compilation serves all of them)
eval_interval = 1000             # estimate train and val loss every this many steps (and at the end); 0 = never
eval_iters = 160                 # micro-batches per split in each estimate, all ranks together (8 ranks: 20 each)
log_interval = 10                # print and append to log.jsonl every this many steps
save_interval = 1000             # overwrite out_dir/ckpt.pt every this many steps (and always at the end)
keep_every = 4000                # also keep ckpt_{iter}.pt every this many steps (a multiple of save_interval); 0 = never
peak_flops = 0.0                 # one GPU's peak 16-bit FLOP/s for MFU; 0 = look its name up in PEAK_FLOPS
seed = 1337                      # seeds initialization, data order and dropout
DEFAULTS = {k: v for k, v in globals().items() if not k.startswith("_") and type(v) in (bool, int, float, str)}
# -----------------------------------------------------------------------------

# Dense 16-bit tensor-core FLOP/s (fp32 accumulation) from NVIDIA's datasheets, for MFU. The first name
# contained in torch.cuda.get_device_name() wins, so the more specific names come first.
PEAK_FLOPS = [
    ("H100 NVL", 835e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12),
    ("A100", 312e12), ("A10", 125e12), ("L40S", 362e12), ("L40", 181e12), ("L4", 121e12),
    ("RTX 4090", 165e12), ("RTX 3090", 71e12), ("V100", 125e12), ("T4", 65e12),
]
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def fail(msg):
    """Stop with a one-line error naming the problem (every rank fails alike; torchrun stops the rest)."""
    raise SystemExit(f"train.py: error: {msg}")


# -----------------------------------------------------------------------------
# Settings from config files and --key=value flags

def usage():
    """The docstring, then every key with its default and the comment from its line above."""
    source = open(__file__).read()
    lines = [__doc__.strip(), "", "keys (--key=default):"]
    for key, value in DEFAULTS.items():
        comment = re.search(rf"^{key} = .*?# (.*)$", source, re.M)
        lines.append(f"  --{key}={value}".ljust(34) + (comment.group(1) if comment else ""))
    return "\n".join(lines)


def set_key(cfg, key, value, where):
    """cfg[key] = value, if key exists and value has the default's type (an int is a fine float)."""
    if key not in DEFAULTS:
        fail(f"unknown config key {key!r} ({where}); `python train.py --help` lists the keys")
    want = type(DEFAULTS[key])
    if want is float and type(value) is int:
        value = float(value)
    if type(value) is not want:
        fail(f"{key} must be {want.__name__}, got {value!r} ({where})")
    cfg[key] = value


def parse_config(argv):
    """The defaults, overridden in order by config files (Python files of assignments) and --key=value."""
    cfg = dict(DEFAULTS)
    for arg in argv:
        if arg in ("-h", "--help"):
            print(usage())
            sys.exit(0)
        if arg.startswith("--"):
            key, eq, text = arg[2:].partition("=")
            if not eq:
                fail(f"expected --key=value, got {arg!r}")
            if isinstance(DEFAULTS.get(key), str):
                value = text  # strings need no quotes: --out_dir=out/x
            else:
                try:
                    value = ast.literal_eval(text)  # a Python literal: 3, 1e-4, True
                except (ValueError, SyntaxError):
                    value = text  # set_key reports the type mismatch
            set_key(cfg, key, value, arg)
        elif os.path.isfile(arg):
            namespace = {}
            try:
                exec(open(arg).read(), namespace)
            except Exception as e:
                fail(f"config file {arg}: {type(e).__name__}: {e}")
            for key, value in namespace.items():
                if not key.startswith("_") and not isinstance(value, types.ModuleType):
                    set_key(cfg, key, value, arg)
        else:
            fail(f"config file {arg} not found (arguments are config files and --key=value)")
    return types.SimpleNamespace(**cfg)


def check_config(cfg, world_size):
    """Reject impossible settings before any work; return the gradient accumulation steps."""
    choices = {"dtype": DTYPES, "attention": ("auto", "triton", "sdpa")}
    for key, allowed in choices.items():
        if getattr(cfg, key) not in allowed:
            fail(f"{key} must be one of {', '.join(allowed)}, got {getattr(cfg, key)!r}")
    for key in ("max_iters", "block_size", "batch_size", "micro_batch_size", "log_interval", "eval_iters"):
        if getattr(cfg, key) <= 0:
            fail(f"{key} must be positive, got {getattr(cfg, key)}")
    if cfg.seed < 0:
        fail(f"seed must be >= 0, got {cfg.seed}")
    if cfg.keep_every and (not cfg.save_interval or cfg.keep_every % cfg.save_interval):
        fail(f"keep_every {cfg.keep_every} must be a multiple of save_interval {cfg.save_interval}: "
             "a checkpoint is only kept at a step where one is saved")
    per_step = cfg.micro_batch_size * world_size
    if cfg.batch_size % per_step:
        fail(f"batch_size {cfg.batch_size} is not a multiple of micro_batch_size {cfg.micro_batch_size} "
             f"x {world_size} ranks = {per_step}")
    if cfg.init_from == "scratch":
        try:
            PhiConfig.preset(cfg.model)
        except ValueError as e:
            fail(str(e))
    return cfg.batch_size // per_step


def setup_device(cfg):
    """(rank, world size, device). Under torchrun (RANK set) join the process group: NCCL between
    GPUs, gloo between CPU processes."""
    name = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        fail("device cuda asked for, but torch sees no GPU")
    if "RANK" not in os.environ:
        return 0, 1, torch.device(name)
    die_with_launcher()
    if name.startswith("cuda"):
        name = f"cuda:{os.environ['LOCAL_RANK']}"
        torch.cuda.set_device(name)
    dist.init_process_group("nccl" if name.startswith("cuda") else "gloo")
    return dist.get_rank(), dist.get_world_size(), torch.device(name)


def die_with_launcher():
    """Have Linux SIGKILL this worker when its parent, torchrun, dies. torchrun starts every worker in a
    session of its own, so when torchrun itself is killed (SIGKILL, the OOM killer, a lost session) nothing
    else stops the workers: they would train on unsupervised, into the same out_dir. SIGKILL, not SIGTERM:
    with a rank perhaps gone, the collective a checkpoint needs could hang; the last checkpoint stands."""
    # torchrun's workers only: another launcher (a script that starts the ranks) may rightly exit first
    if sys.platform != "linux" or "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    parent = os.getppid()
    PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the launcher died before the request was in place
        os.kill(os.getpid(), signal.SIGKILL)


# -----------------------------------------------------------------------------
# Data: token windows from memory-mapped bins

def find_data(cfg):
    """Paths of train.bin and val.bin, checked to exist and to hold at least one window."""
    paths = {split: os.path.join(cfg.data_dir, f"{split}.bin") for split in ("train", "val")}
    for path in paths.values():
        if not os.path.isfile(path):
            fail(f"missing {path}: make it with `python prepare.py --source ... --out {cfg.data_dir}`")
        size = os.path.getsize(path)
        if size % 2 or size // 2 <= cfg.block_size:
            fail(f"{path} holds {size} bytes, not a uint16 array of more than block_size+1 = {cfg.block_size + 1} tokens")
    return paths


def check_vocab(paths, data_dir, vocab_size):
    """The data's token ids must index the model's embedding: check meta.json, then the largest id."""
    meta_path = os.path.join(data_dir, "meta.json")
    if not os.path.isfile(meta_path):  # prepare.py writes it last: without it the bins may be half-made
        fail(f"missing {meta_path}: prepare.py never finished writing {data_dir}; run it again")
    try:
        meta = json.load(open(meta_path))
    except json.JSONDecodeError as e:
        fail(f"{meta_path} is not valid JSON ({e})")
    for split, path in paths.items():
        promised = meta.get("splits", {}).get(split, {}).get("tokens")
        if promised is not None and os.path.getsize(path) != 2 * promised:
            fail(f"{path} is not the {promised} tokens {meta_path} promises: a newer or older run's file?")
    if meta.get("tokenizer", "codegen") != "codegen":
        fail(f"data/vocab mismatch: {meta_path} says tokenizer {meta['tokenizer']!r}, phi-1 uses 'codegen'")
    if meta.get("vocab_size", 0) > vocab_size:
        fail(f"data/vocab mismatch: {meta_path} says vocab_size {meta['vocab_size']}, the model has {vocab_size}")
    for path in paths.values():
        top = int(np.memmap(path, dtype=np.uint16, mode="r").max())
        if top >= vocab_size:
            fail(f"data/vocab mismatch: {path} holds token id {top}, the model's vocab_size is {vocab_size}")


def data_fingerprint(paths, data_dir):
    """What a resume checks to be reading the bins it trained on: each bin's token count and a hash of
    meta.json and of 64 slices of 4 KiB spread evenly over each bin (a few hundred KiB read, whatever the
    size). The data order follows from the token counts, and prepare.py writes meta.json last, with the
    sources, the command and the counts: a new prepare.py run over other data changes the counts or
    meta.json, and an edit in place of a bin shows in the slices unless it is small and falls between them."""
    digest = hashlib.sha256(open(os.path.join(data_dir, "meta.json"), "rb").read())
    tokens = {}
    for split, path in paths.items():
        size = os.path.getsize(path)
        tokens[split] = size // 2
        with open(path, "rb") as f:
            for offset in np.linspace(0, max(size - 4096, 0), 64).astype(np.int64) // 2 * 2:
                f.seek(int(offset))
                digest.update(f.read(4096))
    return {"tokens": tokens, "sha256": digest.hexdigest()}


def check_same_data(ckpt, now, cfg):
    """Refuse to resume on other bins than the checkpoint's: the rest of the run would read another order."""
    then = ckpt.get("data")
    if then is None or now == then:  # checkpoints from before fingerprints cannot be checked
        return
    sizes = ", ".join(f"{split}.bin {then['tokens'][split]:,} -> {now['tokens'][split]:,} tokens" for split in now["tokens"])
    fail(f"the data in {cfg.data_dir} is not what {cfg.out_dir}/ckpt.pt was trained on ({sizes}; contents differ); "
         "resume on the same bins, or start from its weights with --init_from=<checkpoint>")


def n_windows(path, block_size):
    """How many whole windows of block_size + 1 tokens (inputs and the next-token targets) start at
    multiples of block_size in a bin: the training examples of one epoch."""
    return (os.path.getsize(path) // 2 - 1) // block_size


@functools.lru_cache(maxsize=2)
def epoch_order(n, seed, epoch):
    """Epoch `epoch`'s order of the n windows: a permutation seeded by (seed, epoch) alone."""
    return np.random.default_rng([seed, 0, epoch]).permutation(n)


def window_starts(n, block_size, seed, first, count):
    """Starts of windows first .. first + count - 1 of the endless sequence that reads every window once
    in epoch 0's order, then once in epoch 1's, and so on. A step's windows follow from its number alone,
    so a resumed run reads exactly what the uninterrupted run would have, and a small set simply wraps
    into its next epoch (several per step if need be)."""
    epochs, positions = np.divmod(np.arange(first, first + count), n)
    starts = np.empty(count, dtype=np.int64)
    for epoch in np.unique(epochs):
        here = epochs == epoch
        starts[here] = epoch_order(n, seed, int(epoch))[positions[here]] * block_size
    return starts


def get_batch(path, starts, block_size, device):
    """Inputs x and next-token targets y, each (len(starts), block_size) int64 on device. The memmap
    is reopened per batch: one kept open grows the process's memory as pages are touched (nanoGPT)."""
    data = np.memmap(path, dtype=np.uint16, mode="r")
    xy = torch.from_numpy(np.stack([data[s:s + block_size + 1] for s in starts]).astype(np.int64))
    if device.type == "cuda":
        xy = xy.pin_memory().to(device, non_blocking=True)  # the copy overlaps the GPU's work
    return xy[:, :-1], xy[:, 1:]


def step_batches(path, cfg, step, rank, world_size, device):
    """This rank's micro-batches for optimizer step `step`: the step's batch_size windows are the next
    ones of the epoch sequence, and rank r takes the r-th slice. So every rank reads different data, and
    which windows a step reads does not depend on the number of ranks."""
    n = n_windows(path, cfg.block_size)
    starts = window_starts(n, cfg.block_size, cfg.seed, step * cfg.batch_size, cfg.batch_size)
    mine = np.split(starts, world_size)[rank]
    for micro in np.split(mine, len(mine) // cfg.micro_batch_size):
        yield get_batch(path, micro, cfg.block_size, device)


def eval_windows(path, cfg, tag):
    """The evaluation sample of a split: eval_iters micro-batches of distinct windows (all of them if the
    split holds fewer), drawn once from (seed, split) alone. The same windows at every evaluation, so the
    curve shows the model changing rather than the sample, and the same for any number of ranks."""
    n = n_windows(path, cfg.block_size)
    picked = np.random.default_rng([cfg.seed, 1, tag]).permutation(n)[:cfg.eval_iters * cfg.micro_batch_size]
    return np.sort(picked) * cfg.block_size


@torch.no_grad()
def estimate_loss(model, paths, cfg, rank, world_size, device, autocast):
    """Mean loss of each split over its evaluation sample, whose micro-batches are dealt out to the
    ranks in turn. Dropout is off."""
    model.eval()
    out = {}
    for tag, split in enumerate(("train", "val")):
        starts = eval_windows(paths[split], cfg, tag)
        micros = [starts[i:i + cfg.micro_batch_size] for i in range(0, len(starts), cfg.micro_batch_size)]
        total = torch.zeros(2, device=device)  # summed window losses, windows
        for micro in micros[rank::world_size]:
            x, y = get_batch(paths[split], micro, cfg.block_size, device)
            with autocast:
                total[0] += model(x, y).float() * len(micro)
            total[1] += len(micro)
        if world_size > 1:
            dist.all_reduce(total)
        out[f"{split}_loss"] = (total[0] / total[1]).item()
    model.train()
    return out


def any_rank(flag, world_size, device):
    """True on every rank when flag is True on at least one."""
    if world_size == 1:
        return flag
    t = torch.tensor(float(flag), device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_ranks_mean(t, world_size):
    """A scalar tensor's mean over ranks, as a Python float."""
    if world_size > 1:
        t = t.clone()
        dist.all_reduce(t)  # SUM works on every backend (AVG is NCCL-only)
    return t.item() / world_size


# -----------------------------------------------------------------------------
# Model, optimizer, schedule, one step

def build_model(cfg, device):
    """(model, checkpoint or None). The architecture comes from the preset (scratch) or from the
    weights' source; the training-time fields (dropout, attention kernel, checkpointing) from cfg."""
    train_fields = dict(attn_pdrop=cfg.dropout, resid_pdrop=cfg.dropout, block_size=cfg.block_size,
                        attention=cfg.attention, gradient_checkpointing=cfg.gradient_checkpointing)
    src, ckpt = cfg.init_from, None
    if src == "scratch":
        with torch.device(device):  # initialize where it will train: fast on a GPU
            return Phi(PhiConfig.preset(cfg.model, **train_fields)), None
    if src == "resume":
        src = os.path.join(cfg.out_dir, "ckpt.pt")
        if not os.path.isfile(src):
            fail(f"init_from=resume, but there is no {src} to resume from")
    elif os.path.isfile(os.path.join(src, "config.json")):  # a Hugging Face directory
        hf = Phi.from_pretrained(src)
        model_config, state = dataclasses.asdict(hf.config), hf.state_dict()
    elif os.path.isdir(src) and os.path.isfile(os.path.join(src, "ckpt.pt")):
        src = os.path.join(src, "ckpt.pt")
    elif not os.path.isfile(src):
        fail(f"init_from {src!r} is not scratch, resume, a checkpoint file, an out_dir or a Hugging Face directory")
    if os.path.isfile(src):
        # mmap: 8 ranks share one copy of a 20 GB checkpoint in the page cache instead of 8 in RAM
        ckpt = torch.load(src, map_location="cpu", weights_only=True, mmap=True)
        model_config, state = ckpt["model_config"], ckpt["model"]
    # The context is the longer of the weights' and this run's: finetuning on short windows (a few short
    # exercises) does not make the model forget the positions it was pretrained on.
    train_fields["block_size"] = max(cfg.block_size, model_config.get("block_size", 0))
    with torch.device(device):
        model = Phi(PhiConfig(**{**model_config, **train_fields}))
    model.load_state_dict(state)
    return model, (ckpt if cfg.init_from == "resume" else None)


def compile_blocks(model):
    """torch.compile each block ("regional compilation"). The blocks are alike, so one compilation serves all
    of them: phi-1 compiles one block, not a graph of 24 (on this CPU the 4-block tiny model's first step took
    0.58x the time of compiling the whole model, at the same speed after). Each block's backward also hands
    DDP its gradients as they are ready, as eager does. The embedding and the chunked loss stay eager."""
    for block in model.model.layers:
        block.compile()


def configure_optimizer(model, cfg, device):
    """AdamW with weight decay on the weight matrices only (every 2-D parameter: the linear layers'
    weights, the embedding and lm_head), none on biases and LayerNorm gains/shifts. The paper says
    "weight decay 0.1" without saying on what; this is the GPT-3 / Megatron / nanoGPT convention:
    decay regularizes the matrices that mix features, while pulling the 1-D offsets and scales toward
    zero would only fight the LayerNorms."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    # fused: one kernel updates every tensor (on a CPU too, where it is ~6x faster than the default)
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                             fused=device.type in ("cuda", "cpu"))


def lr_at(step, cfg):
    """Linear warmup to learning_rate over warmup_iters, then linear decay to min_lr at lr_decay_iters
    (paper 2.3: "linear-warmup-linear-decay"). step counts from 0."""
    end = cfg.lr_decay_iters or cfg.max_iters
    if step < cfg.warmup_iters:
        return cfg.learning_rate * (step + 1) / cfg.warmup_iters
    if step >= end:
        return cfg.min_lr
    return cfg.learning_rate + (step - cfg.warmup_iters) / (end - cfg.warmup_iters) * (cfg.min_lr - cfg.learning_rate)


def train_step(model, optimizer, scaler, batches, accum, grad_clip, autocast):
    """One optimizer step over `accum` micro-batches; returns (mean loss, grad norm) as tensors.

    Under DDP the gradients are all-reduced only in the last micro-step's backward: the earlier
    ones run under no_sync() and just accumulate locally. A step whose gradients are not finite is
    skipped: by the GradScaler in fp16 (which then lowers the loss scale), by hand otherwise."""
    total = 0.0
    for micro, (x, y) in enumerate(batches):  # a generator: the next batch loads while the GPU works
        sync = micro == accum - 1 or not isinstance(model, DDP)
        with contextlib.nullcontext() if sync else model.no_sync():
            with autocast:
                loss = model(x, y)
            # dividing by accum makes the summed gradients those of the mean loss over the whole batch
            scaler.scale(loss / accum).backward()
        total += loss.detach()
    scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip or float("inf"))
    if scaler.is_enabled() or torch.isfinite(norm):
        scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return total / accum, norm


# -----------------------------------------------------------------------------
# Checkpoints, RNG states, log and picture

def save_checkpoint(path, state):
    """torch.save through a temporary file renamed over `path`: a kill mid-save leaves the previous
    checkpoint whole, never half of a new one."""
    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def keep_copy(path, keep_path):
    """Keep this checkpoint under a second name. A hard link costs no disk or time, and it survives
    ckpt.pt being replaced later (the rename swaps the name, the kept inode stays)."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(keep_path)
    try:
        os.link(path, keep_path)
    except OSError:  # a filesystem without hard links
        with open(path, "rb") as src, atomic_write(keep_path, "wb") as dst:
            while chunk := src.read(1 << 24):
                dst.write(chunk)


def rng_states(world_size):
    """Every rank's torch RNG states (they draw the dropout masks), gathered to all ranks. Plain
    tensors, so that torch.load(weights_only=True) reads them back."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    if world_size == 1:
        return [state]
    states = [None] * world_size
    dist.all_gather_object(states, state)
    return states


def restore_rng(ckpt, rank, world_size, seed):
    """Put back this rank's RNG state; with a different number of ranks, reseed (no longer bit-exact)."""
    states = ckpt.get("rng", [])
    if len(states) != world_size:
        torch.manual_seed(seed + 1 + rank + ckpt["iter"])
        return False
    torch.set_rng_state(states[rank]["cpu"])
    if "cuda" in states[rank] and torch.cuda.is_available():
        torch.cuda.set_rng_state(states[rank]["cuda"])
    return True


def restart_log(path, keep_through):
    """Rewrite log.jsonl keeping the records up to step keep_through: those the run we resume had
    written before its checkpoint; anything it logged after (and lost) is done again."""
    old = list(iter_jsonl(path)) if os.path.isfile(path) and keep_through else []
    with atomic_write(path) as f:
        for record in old:
            if record.get("iter", math.inf) <= keep_through:
                f.write(json.dumps(record) + "\n")


def finite(x):
    """x as a float, or None when it is inf/nan (JSON has no infinities)."""
    x = float(x)
    return x if math.isfinite(x) else None


def plot_losses(log_path, svg_path):
    """Train loss (each logged step) and val loss (each evaluation) against step, as a hand-written SVG."""
    records = list(iter_jsonl(log_path))
    curves = {"train": [(r["iter"], r["loss"]) for r in records if r.get("loss") is not None],
              "val": [(r["iter"], r["val_loss"]) for r in records if r.get("val_loss") is not None]}
    points = curves["train"] + curves["val"]
    if len(points) < 2:
        return
    W, H, left, right, top, bottom = 640, 400, 60, 20, 30, 45
    (x0, x1), (y0, y1) = [(min(v), max(v)) for v in zip(*points)]
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1e-6)
    sx = lambda x: left + (x - x0) / (x1 - x0) * (W - left - right)
    sy = lambda y: top + (y1 - y) / (y1 - y0) * (H - top - bottom)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="18" text-anchor="middle">loss ({os.path.dirname(log_path) or "."})</text>',
           f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle">step</text>']
    for i in range(5):  # grid lines with tick labels
        x, y = x0 + i * (x1 - x0) / 4, y0 + i * (y1 - y0) / 4
        svg.append(f'<line x1="{sx(x):.1f}" y1="{top}" x2="{sx(x):.1f}" y2="{H - bottom}" stroke="#ddd"/>'
                   f'<text x="{sx(x):.1f}" y="{H - bottom + 15}" text-anchor="middle">{x:.0f}</text>')
        svg.append(f'<line x1="{left}" y1="{sy(y):.1f}" x2="{W - right}" y2="{sy(y):.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 5}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
    for k, (name, color) in enumerate((("train", "#1f77b4"), ("val", "#ff7f0e"))):
        if curves[name]:
            xy = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in curves[name])
            svg.append(f'<polyline points="{xy}" fill="none" stroke="{color}" stroke-width="1.5"/>')
            svg.append(f'<text x="{W - right - 60}" y="{top + 15 + 15 * k}" fill="{color}">{name}</text>')
    svg.append("</svg>")
    with atomic_write(svg_path) as f:
        f.write("\n".join(svg) + "\n")


# -----------------------------------------------------------------------------
# Reporting

def peak_flops_of(gpu_name):
    """A GPU's peak 16-bit FLOP/s from PEAK_FLOPS, or None when it is not in the table."""
    return next((flops for key, flops in PEAK_FLOPS if key in gpu_name), None)


def peak_flops_per_gpu(device, override=0.0):
    """Peak FLOP/s of one device for MFU, or None when unknown (a CPU, a GPU not in the table)."""
    if override or device.type != "cuda":
        return override or None
    return peak_flops_of(torch.cuda.get_device_name(device))


def peak_memory(device):
    """This process's peak memory so far, in GiB. On a GPU the CUDA allocator's: the tensors at their
    largest (max allocated), and what it held from the card, its cache included (max reserved; the figure
    to compare with the card). On a CPU the peak resident set, Python and libraries included."""
    if device.type == "cuda":
        return {"cuda_max_allocated_gib": torch.cuda.max_memory_allocated(device) / 2**30,
                "cuda_max_reserved_gib": torch.cuda.max_memory_reserved(device) / 2**30}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return {"max_rss_gib": rss * (1 if sys.platform == "darwin" else 1024) / 2**30}


def describe(cfg, model, world_size, accum, peak, start_iter, windows):
    """The figures that follow from the settings, printed before training starts."""
    tokens_per_step = cfg.batch_size * cfg.block_size
    fpt = model.flops_per_token(cfg.block_size)
    total_tokens = tokens_per_step * (cfg.max_iters - start_iter)
    c = model.config
    lines = [
        f"model: {model.num_params():,} parameters ({model.num_params(non_embedding=True):,} without the embedding), "
        f"{c.n_layer} layers, width {c.n_embd}, {c.n_head} heads, vocab {c.vocab_size}",
        f"batch: {cfg.batch_size} sequences x {cfg.block_size} tokens = {tokens_per_step:,} tokens per step "
        f"= {world_size} ranks x {cfg.micro_batch_size} micro-batch x {accum} accumulation steps",
        f"compute: {fpt / 1e9:.2f} GFLOPs per token (6N + 12*L*d*T), {fpt * tokens_per_step:.3g} per step",
        f"steps {start_iter} -> {cfg.max_iters}: {total_tokens / 1e9:.3g}B tokens, {fpt * total_tokens:.3g} FLOPs",
        f"data: train.bin holds {windows:,} windows; the run reads {cfg.max_iters * cfg.batch_size / windows:.3g} epochs",
    ]
    if peak:
        hours = fpt * total_tokens / (0.5 * peak * world_size) / 3600
        lines.append(f"at 50% MFU of {peak:.3g} FLOP/s x {world_size}: about {hours:.1f} hours")
    return "\n".join(lines)


# -----------------------------------------------------------------------------

def main():
    cfg = parse_config(sys.argv[1:])
    accum = check_config(cfg, int(os.environ.get("WORLD_SIZE", 1)))
    paths = find_data(cfg)
    rank, world_size, device = setup_device(cfg)
    try:
        stopped = train(cfg, paths, accum, rank, world_size, device)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if stopped:
        sys.exit(128 + signal.SIGTERM)  # the status of a process that SIGTERM ended: this run is not finished


def resume(ckpt, optimizer, scaler, cfg, say):
    """Load the optimizer and loss-scaler states of the run we continue; return its step."""
    optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt["scaler"] and scaler.is_enabled():
        scaler.load_state_dict(ckpt["scaler"])
    changed = [f"{k} {v!r} -> {getattr(cfg, k)!r}" for k, v in ckpt["config"].items()
               if k != "init_from" and getattr(cfg, k, v) != v]
    say(f"resuming {cfg.out_dir}/ckpt.pt at step {ckpt['iter']}" + (f"; changed: {', '.join(changed)}" if changed else ""))
    return ckpt["iter"]


def start_out_dir(cfg, start_iter, say):
    """Create out_dir, drop the temporary files of a save that was killed, and restart log.jsonl."""
    os.makedirs(cfg.out_dir, exist_ok=True)
    for name in os.listdir(cfg.out_dir):
        if name.startswith(".tmp-"):
            os.remove(os.path.join(cfg.out_dir, name))
    if cfg.init_from != "resume" and os.path.isfile(os.path.join(cfg.out_dir, "ckpt.pt")):
        say(f"note: {cfg.out_dir}/ckpt.pt will be overwritten (--init_from=resume would continue it)")
    restart_log(os.path.join(cfg.out_dir, "log.jsonl"), start_iter)


def train(cfg, paths, accum, rank, world_size, device):
    master = rank == 0
    say = tqdm.write if master else (lambda *_: None)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # float32 matmuls on tensor cores
        torch.backends.cudnn.allow_tf32 = True
        if cfg.dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
            fail(f"{torch.cuda.get_device_name(device)} has no bfloat16; use --dtype=float16")
    torch.manual_seed(cfg.seed)  # the same initialization on every rank (DDP broadcasts rank 0's anyway)
    raw_model, ckpt = build_model(cfg, device)
    check_vocab(paths, cfg.data_dir, raw_model.config.vocab_size)
    fingerprint = data_fingerprint(paths, cfg.data_dir)
    if ckpt:
        check_same_data(ckpt, fingerprint, cfg)
    optimizer = configure_optimizer(raw_model, cfg, device)
    # dynamic loss scaling (fp16 only): multiply the loss so small gradients survive in fp16; when
    # gradients overflow, skip the step and halve the scale; double it after 2000 clean steps
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.dtype == "float16")
    autocast = torch.autocast(device.type, dtype=DTYPES[cfg.dtype], enabled=cfg.dtype != "float32")
    start_iter = resume(ckpt, optimizer, scaler, cfg, say) if ckpt else 0
    peak = peak_flops_per_gpu(device, cfg.peak_flops)
    windows = n_windows(paths["train"], cfg.block_size)
    say(describe(cfg, raw_model, world_size, accum, peak, start_iter, windows))
    if cfg.warmup_iters >= (cfg.lr_decay_iters or cfg.max_iters):
        say(f"note: warmup_iters {cfg.warmup_iters} >= the {cfg.lr_decay_iters or cfg.max_iters} steps of the "
            f"schedule: the learning rate never reaches {cfg.learning_rate}")
    if start_iter >= cfg.max_iters:
        return say(f"nothing to do: the checkpoint is at step {start_iter}, max_iters is {cfg.max_iters}")

    if cfg.compile:
        compile_blocks(raw_model)
    model = eval_model = raw_model
    if world_size > 1:
        # the gradients are views into DDP's all-reduce buckets: no second copy of them (5.7 GB for phi-1)
        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None, gradient_as_bucket_view=True)
    if ckpt is None:
        torch.manual_seed(cfg.seed + 1 + rank)  # from here on each rank draws its own dropout masks
    elif not restore_rng(ckpt, rank, world_size, cfg.seed):
        say(f"note: the checkpoint was written by {len(ckpt['rng'])} ranks, this run has {world_size}: "
            "the same data, but other dropout masks")
    del ckpt  # it may be a memory map of the file that the next save replaces
    log_path, ckpt_path, svg_path = (os.path.join(cfg.out_dir, f) for f in ("log.jsonl", "ckpt.pt", "loss.svg"))
    if master:
        start_out_dir(cfg, start_iter, say)
    log = open(log_path, "a") if master else None

    def record(entry):
        if master:
            log.write(json.dumps(entry) + "\n")
            log.flush()

    if start_iter == 0 and cfg.eval_interval:
        record({"iter": 0, **estimate_loss(eval_model, paths, cfg, rank, world_size, device, autocast)})
    flops_per_step = raw_model.flops_per_token(cfg.block_size) * cfg.batch_size * cfg.block_size
    bar = tqdm(total=cfg.max_iters, initial=start_iter, disable=not master, unit="step", dynamic_ncols=True)
    stop = []  # a SIGTERM (preemption, scancel, torchrun passing one on) lands here: save and stop after this step
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    t_last, it_last = time.time(), start_iter
    for it in range(start_iter + 1, cfg.max_iters + 1):  # `it` counts the steps done once this one is
        lr = lr_at(it - 1, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batches = step_batches(paths["train"], cfg, it - 1, rank, world_size, device)
        loss, norm = train_step(model, optimizer, scaler, batches, accum, cfg.grad_clip, autocast)
        bar.update()
        last = it == cfg.max_iters

        if it % cfg.log_interval == 0 or last:
            loss = all_ranks_mean(loss, world_size)  # .item() waits for the GPU, so the clock is honest
            dt = (time.time() - t_last) / (it - it_last)  # seconds per step since the last log
            mfu = flops_per_step / dt / (peak * world_size) if peak else None
            memory = peak_memory(device)
            entry = {"iter": it, "loss": finite(loss), "lr": lr, "grad_norm": finite(norm),
                     "tokens_per_sec": cfg.batch_size * cfg.block_size / dt, "mfu": mfu,
                     "epoch": it * cfg.batch_size / windows, **memory}
            if scaler.is_enabled():
                entry["scale"] = scaler.get_scale()
            record(entry)
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            say(f"step {it}/{cfg.max_iters} | loss {loss:.4f} | lr {lr:.3g} | grad norm {float(norm):.3g} | "
                f"{entry['tokens_per_sec']:,.0f} tok/s" + (f" | mfu {mfu:.1%}" if mfu else "") +
                f" | peak mem {next(iter(memory.values())):.2f} GiB | eta {duration(dt * (cfg.max_iters - it))}")
            t_last, it_last = time.time(), it

        if cfg.eval_interval and (it % cfg.eval_interval == 0 or last):
            losses = estimate_loss(eval_model, paths, cfg, rank, world_size, device, autocast)
            record({"iter": it, **losses})
            say(f"step {it}: train loss {losses['train_loss']:.4f}, val loss {losses['val_loss']:.4f}")
            if master:
                plot_losses(log_path, svg_path)
            t_last, it_last = time.time(), it  # evaluation time is no training time

        stopping = any_rank(bool(stop), world_size, device)  # the signal may reach the ranks at different steps
        if (cfg.save_interval and it % cfg.save_interval == 0) or last or stopping:
            rngs = rng_states(world_size)  # a collective: every rank takes part, rank 0 writes
            if master:
                save_checkpoint(ckpt_path, {
                    "model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(), "iter": it, "config": vars(cfg),
                    "model_config": dataclasses.asdict(raw_model.config), "rng": rngs, "data": fingerprint})
                if cfg.keep_every and it % cfg.keep_every == 0:
                    keep_copy(ckpt_path, os.path.join(cfg.out_dir, f"ckpt_{it}.pt"))
            t_last, it_last = time.time(), it
        if stopping:
            say(f"SIGTERM: stopped after step {it} and saved {ckpt_path}; the same command with "
                "--init_from=resume continues it")
            break
    bar.close()
    if master:
        log.close()
        plot_losses(log_path, svg_path)
    if it < cfg.max_iters:
        return True  # stopped by SIGTERM
    say(f"done: {ckpt_path}, {log_path}, {svg_path}")


if __name__ == "__main__":
    main()
