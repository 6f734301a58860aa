"""train.py: settings, data, schedule and optimizer in-process; DDP training, exact resume after a
kill, atomic checkpoints and one-line errors through the real command line (CPU, gloo)."""
import contextlib
import json
import re
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import types
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

import train
from model import Phi, PhiConfig, load_model

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The tiny model on 64-token windows; 2 micro-batches of 2 per rank (so DDP's no_sync path runs).
TINY = ["--model=tiny", "--block_size=64", "--batch_size=8", "--micro_batch_size=2", "--device=cpu",
        "--compile=False", "--learning_rate=3e-3", "--warmup_iters=2", "--eval_iters=2", "--log_interval=1", "--seed=7"]


def cfg_with(**overrides):
    return types.SimpleNamespace(**{**train.DEFAULTS, **overrides})


def run(args, nproc=1, check=True, **popen):
    """python train.py ARGS, or under torchrun with nproc ranks; returns the CompletedProcess (or Popen)."""
    cmd = [sys.executable, "train.py", *args]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "train.py", *args]
    # torchrun passes a SIGTERM on to its workers, and SIGKILLs those still running this many seconds later
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": "300"}
    if popen:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, **popen)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def process_states():
    """{pid: (state letter, parent pid)} of every process, from /proc."""
    states = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            states[int(stat.parent.name)] = fields[0], int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    return states


def descendants(pid):
    """The pids of a process's children, their children, and so on."""
    children = {}
    for p, (_, ppid) in process_states().items():
        children.setdefault(ppid, []).append(p)
    tree, todo = [], list(children.get(pid, []))
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def kill_tree(pid):
    """SIGKILL a process and all its descendants: torchrun starts each worker in a session of its
    own, so killing torchrun or its process group would leave the workers running."""
    for p in [pid] + descendants(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def wait_for_step(proc, out_dir, step, old_log=None):
    """Wait until a run has logged a training step >= step (in a log.jsonl other than old_log, the inode of
    the log a resumed run rewrites: until it does, the log holds the steps of the run before)."""
    deadline, log = time.time() + 300, out_dir / "log.jsonl"
    while not (log.exists() and log.stat().st_ino != old_log and any(r.get("iter", 0) >= step and "loss" in r for r in read_log(out_dir))):
        assert proc.poll() is None and time.time() < deadline, f"the run ended or stalled before step {step}"
        time.sleep(0.05)


def last_error_line(proc):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines, proc.stdout
    return lines[-1]


def read_log(out_dir):
    return [json.loads(line) for line in open(os.path.join(out_dir, "log.jsonl"))]


@pytest.fixture(scope="module")
def bins(tmp_path_factory):
    """Token bins made by prepare.py from two packages of this Python's standard library."""
    root = tmp_path_factory.mktemp("corpus")
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    for name in ("json", "email"):
        shutil.copytree(stdlib / name, root / "src" / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = root / "bins"
    subprocess.run([sys.executable, "prepare.py", "--source", str(root / "src"), "--out", str(out),
                    "--val-fraction", "0.2"], cwd=ROOT, check=True, capture_output=True)
    assert os.path.getsize(out / "val.bin") > 2 * 1000
    return out


# -----------------------------------------------------------------------------
# Settings

def test_config_file_and_flags_override_in_order(tmp_path):
    conf = tmp_path / "c.py"
    conf.write_text("import math\nbatch_size = 64\nlearning_rate = 1  # an int is a fine float\nout_dir = 'x'\n")
    cfg = train.parse_config([str(conf), "--out_dir=runs/y", "--compile=False", "--learning_rate=2e-4"])
    assert (cfg.batch_size, cfg.out_dir, cfg.compile, cfg.learning_rate) == (64, "runs/y", False, 2e-4)
    assert train.parse_config([str(conf)]).learning_rate == 1.0


@pytest.mark.parametrize("args, message", [
    (["--no_such_key=1"], "unknown config key 'no_such_key'"),
    (["--max_iters=1.5"], "max_iters must be int, got 1.5"),
    (["--compile=yes"], "compile must be bool, got 'yes'"),
    (["--max_iters"], "expected --key=value"),
    (["config/nope.py"], "config file config/nope.py not found"),
])
def test_bad_settings_name_the_problem(args, message):
    with pytest.raises(SystemExit) as e:
        train.parse_config(args)
    assert message in str(e.value)


def test_unknown_key_in_config_file(tmp_path):
    conf = tmp_path / "c.py"
    conf.write_text("batch_size = 8\nlearning_rat = 1e-3\n")
    with pytest.raises(SystemExit, match=f"unknown config key 'learning_rat' .*{conf.name}"):
        train.parse_config([str(conf)])
    conf.write_text("batch_size = (\n")
    with pytest.raises(SystemExit, match=f"config file {conf}: SyntaxError"):
        train.parse_config([str(conf)])


@pytest.mark.parametrize("overrides, world, message", [
    (dict(batch_size=1024, micro_batch_size=12), 8, "batch_size 1024 is not a multiple of micro_batch_size 12 x 8 ranks"),
    (dict(dtype="float8"), 1, "dtype must be one of"),
    (dict(model="phi-2"), 1, "unknown model preset 'phi-2'"),
    (dict(save_interval=1000, keep_every=1500), 1, "keep_every 1500 must be a multiple of save_interval 1000"),
    (dict(save_interval=0, keep_every=1000), 1, "keep_every 1000 must be a multiple of save_interval 0"),
])
def test_impossible_settings(overrides, world, message):
    with pytest.raises(SystemExit, match=message):
        train.check_config(cfg_with(**overrides), world)


def test_paper_defaults():
    cfg = cfg_with()
    assert train.check_config(cfg, 8) == 16  # 1024 sequences = 8 GPUs x 8 x 16 accumulation steps
    assert (cfg.model, cfg.block_size, cfg.max_iters, cfg.warmup_iters, cfg.dtype) == ("phi-1", 2048, 36000, 750, "float16")
    assert (cfg.learning_rate, cfg.weight_decay, cfg.dropout) == (1e-3, 0.1, 0.1)
    ft = train.parse_config(["config/finetune.py"])
    assert (ft.batch_size, ft.learning_rate, ft.warmup_iters, ft.weight_decay, ft.max_iters, ft.keep_every) == \
        (256, 1e-4, 50, 0.01, 6000, 1000)


# -----------------------------------------------------------------------------
# Schedule, optimizer, data order, MFU table, picture

def test_lr_warmup_then_linear_decay():
    cfg = cfg_with(learning_rate=1.0, min_lr=0.1, warmup_iters=10, max_iters=110)
    lrs = [train.lr_at(s, cfg) for s in range(120)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.55) and lrs[110] == lrs[119] == pytest.approx(0.1)
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:10])) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert train.lr_at(60, cfg_with(learning_rate=1.0, warmup_iters=10, max_iters=1000, lr_decay_iters=110)) == pytest.approx(0.5)


def test_weight_decay_on_matrices_only():
    model = Phi(PhiConfig.preset("tiny"))
    opt = train.configure_optimizer(model, cfg_with(weight_decay=0.1), torch.device("cpu"))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.1 for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (name.endswith("weight") and "layernorm" not in name), name
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_epochs_read_every_window_once_whatever_the_rank_count(monkeypatch, tmp_path):
    """Every block-aligned window once per epoch, in a new seeded order each epoch; a step's windows
    depend on (seed, step) alone, so 1, 2 or 4 ranks read the same ones, and so does a resumed run."""
    path = tmp_path / "train.bin"
    np.zeros(10 * 16 + 5, dtype=np.uint16).tofile(path)  # 10 windows of 16 + 1 tokens, and a ragged tail
    cfg = cfg_with(block_size=16, batch_size=4, micro_batch_size=1, seed=3)
    monkeypatch.setattr(train, "get_batch", lambda path, starts, block_size, device: starts.tolist())

    def starts(step, world, seed=3):
        c = cfg_with(**{**vars(cfg), "seed": seed})
        return [s for r in range(world) for micro in train.step_batches(str(path), c, step, r, world, None) for s in micro]

    sequence = [s for step in range(10) for s in starts(step, 1)]  # 40 windows: 4 epochs
    epochs = [sequence[i:i + 10] for i in range(0, 40, 10)]
    assert all(sorted(e) == list(range(0, 160, 16)) for e in epochs)
    assert len({tuple(e) for e in epochs}) == 4  # each epoch its own order
    assert all(starts(step, world) == starts(step, 1) for step in (0, 2, 7) for world in (2, 4))
    assert starts(3, 1, seed=4) != starts(3, 1)
    # a set smaller than a step wraps around as often as it must: 3 windows, 4 per step
    np.zeros(3 * 16 + 1, dtype=np.uint16).tofile(path)
    small = starts(0, 1) + starts(1, 1)
    assert sorted(small[:3]) == sorted(small[3:6]) == [0, 16, 32]


def test_evaluation_sample_is_split_across_ranks(monkeypatch, tmp_path):
    """1 rank and 3 ranks evaluate the same windows, each window once, the ranks sharing the work."""
    paths = {split: str(tmp_path / f"{split}.bin") for split in ("train", "val")}
    for path in paths.values():
        np.zeros(50 * 8 + 1, dtype=np.uint16).tofile(path)
    cfg = cfg_with(block_size=8, micro_batch_size=4, eval_iters=5, seed=1)
    monkeypatch.setattr(train, "get_batch", lambda path, starts, block_size, device: (path, starts))
    monkeypatch.setattr(train.dist, "all_reduce", lambda t: None)
    seen = {}

    def model(path, starts):
        seen.setdefault(path, []).extend((rank, s) for s in starts)
        return torch.tensor(1.0)
    model.eval = model.train = lambda: None
    for world in (1, 3):
        seen.clear()
        for rank in range(world):
            train.estimate_loss(model, paths, cfg, rank, world, torch.device("cpu"), contextlib.nullcontext())
        for split, path in paths.items():
            windows = sorted(s for _, s in seen[path])
            assert len(windows) == len(set(windows)) == 20  # 5 micro-batches of 4
            assert {r for r, _ in seen[path]} == set(range(world))
            if world == 1:
                cfg.__dict__[split] = windows
            assert windows == cfg.__dict__[split]
    assert sorted(s for _, s in seen[paths["train"]]) != sorted(s for _, s in seen[paths["val"]])


def test_memory_table_counts_what_a_block_saves():
    """bench/memory.py's bytes per token and block are what autograd keeps for the backward, counted tensor
    by tensor on the tiny model (bf16 autocast, dropout, our kernel interpreted): 3 blocks minus 1 block, at
    40 tokens minus 24 tokens (so that what a block keeps whatever the length, such as a seed, drops out)."""
    pytest.importorskip("triton")
    from bench import memory
    B = 2

    def saved_bytes(n_layer, T):
        torch.manual_seed(0)
        model = Phi(PhiConfig.preset("tiny", n_layer=n_layer, attention="triton", attn_pdrop=0.1, resid_pdrop=0.1))
        weights = {tuple(p.shape) for p in model.parameters()}
        storages = {}

        def pack(t):
            if tuple(t.shape) not in weights:  # the weights and their 16-bit copies are counted apart
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        idx = torch.randint(0, 50000, (B, T), generator=torch.Generator().manual_seed(0))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
            model(idx, idx.roll(-1, 1))
        return sum(storages.values())

    per_block = (saved_bytes(3, 40) - saved_bytes(1, 40) - saved_bytes(3, 24) + saved_bytes(1, 24)) / 2 / (B * (40 - 24))
    assert per_block == memory.activation_bytes_per_token(PhiConfig.preset("tiny"), mask_bytes=2)
    with torch.device("meta"):
        for name in ("phi-1", "phi-1-small"):
            c = PhiConfig.preset(name)
            assert sum(memory.parameter_counts(c).values()) == Phi(c).num_params()


def test_get_batch_targets_are_next_tokens(tmp_path):
    path = tmp_path / "t.bin"
    np.arange(100, dtype=np.uint16).tofile(path)
    x, y = train.get_batch(str(path), np.array([3, 50]), 8, torch.device("cpu"))
    assert x.tolist()[1] == list(range(50, 58)) and torch.equal(y, x + 1) and x.dtype == torch.int64


def test_peak_flops_table():
    assert train.peak_flops_of("NVIDIA H100 80GB HBM3") == 989e12
    assert train.peak_flops_of("NVIDIA H100 PCIe") == 756e12
    assert train.peak_flops_of("NVIDIA A100-SXM4-40GB") == 312e12
    assert train.peak_flops_of("NVIDIA L40S") == 362e12 and train.peak_flops_of("NVIDIA L4") == 121e12
    assert train.peak_flops_of("Some Future GPU") is None
    assert train.peak_flops_per_gpu(torch.device("cpu")) is None
    assert train.peak_flops_per_gpu(torch.device("cpu"), 1e12) == 1e12


def test_loss_picture_is_valid_svg(tmp_path):
    log = tmp_path / "log.jsonl"
    rows = [{"iter": 0, "val_loss": 11.0}] + [{"iter": i, "loss": 10.0 - i / 10} for i in range(1, 30)]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows + [{"iter": 29, "val_loss": 8.0}]))
    train.plot_losses(str(log), str(tmp_path / "loss.svg"))
    svg = ET.parse(tmp_path / "loss.svg").getroot()
    assert len(svg.findall("{http://www.w3.org/2000/svg}polyline")) == 2


# -----------------------------------------------------------------------------
# Checkpoints

def test_kill_during_save_leaves_the_previous_checkpoint(tmp_path):
    """SIGKILL while a big checkpoint is being written: ckpt.pt is still the old, complete one."""
    path = tmp_path / "ckpt.pt"
    script = (f"import torch, train\n"
              f"train.save_checkpoint({str(path)!r}, {{'iter': 1, 'model': {{'w': torch.ones(3)}}}})\n"
              f"print('saved', flush=True)\n"
              f"train.save_checkpoint({str(path)!r}, {{'iter': 2, 'model': {{'w': torch.ones(150_000_000)}}}})\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "saved"
    deadline = time.time() + 120
    while not list(tmp_path.glob(".tmp-ckpt.pt*")):  # the new checkpoint is being written
        assert time.time() < deadline and proc.poll() is None, "the second save never started"
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["iter"] == 1 and torch.equal(ckpt["model"]["w"], torch.ones(3))


def test_keep_copy_survives_replacement(tmp_path):
    a, kept = tmp_path / "ckpt.pt", tmp_path / "ckpt_10.pt"
    train.save_checkpoint(a, {"iter": 10})
    train.keep_copy(a, kept)
    train.save_checkpoint(a, {"iter": 20})
    assert torch.load(kept, weights_only=True)["iter"] == 10 and torch.load(a, weights_only=True)["iter"] == 20


# -----------------------------------------------------------------------------
# The command line, end to end

def test_one_line_errors_from_the_command_line(bins, tmp_path):
    proc = run(["--no_such_key=3"], check=False)
    assert last_error_line(proc) == ("train.py: error: unknown config key 'no_such_key' (--no_such_key=3); "
                                     "`python train.py --help` lists the keys")
    proc = run([*TINY, f"--data_dir={tmp_path / 'missing'}", f"--out_dir={tmp_path}"], check=False)
    assert last_error_line(proc).startswith(f"train.py: error: missing {tmp_path / 'missing' / 'train.bin'}")


@pytest.mark.parametrize("corrupt, message", [
    ("token", "data/vocab mismatch: {dir}/train.bin holds token id 60000, the model's vocab_size is 51200"),
    ("tokenizer", "data/vocab mismatch: {dir}/meta.json says tokenizer 'cl100k_base', phi-1 uses 'codegen'"),
    ("vocab", "data/vocab mismatch: {dir}/meta.json says vocab_size 100277, the model has 51200"),
])
def test_data_vocab_mismatch(bins, tmp_path, corrupt, message):
    data = tmp_path / "data"
    shutil.copytree(bins, data)
    meta = json.loads((data / "meta.json").read_text())
    if corrupt == "token":
        tokens = np.fromfile(data / "train.bin", dtype=np.uint16)
        tokens[1234] = 60000
        tokens.tofile(data / "train.bin")
    else:
        meta.update(tokenizer="cl100k_base") if corrupt == "tokenizer" else meta.update(vocab_size=100277)
        (data / "meta.json").write_text(json.dumps(meta))
    if corrupt != "token":  # in-process is enough for meta.json; the token scan runs the real command
        with pytest.raises(SystemExit, match=message.format(dir=data)):
            train.check_vocab(train.find_data(cfg_with(data_dir=str(data), block_size=64)), str(data), 51200)
        return
    proc = run([*TINY, f"--data_dir={data}", f"--out_dir={tmp_path / 'out'}", "--max_iters=1"], check=False)
    assert last_error_line(proc) == "train.py: error: " + message.format(dir=data)


@pytest.mark.parametrize("damage", ["no meta.json", "stale val.bin"])
def test_half_made_bins_are_refused(bins, tmp_path, damage):
    """A killed prepare.py leaves no meta.json, or bins that disagree with it: training must refuse them."""
    data = tmp_path / "data"
    shutil.copytree(bins, data)
    if damage == "no meta.json":
        (data / "meta.json").unlink()
        expected = f"missing {data / 'meta.json'}"
    else:
        np.fromfile(data / "val.bin", dtype=np.uint16)[:-100].tofile(data / "val.bin")
        expected = f"{data / 'val.bin'} is not the"
    with pytest.raises(SystemExit, match=re.escape(expected)):
        train.check_vocab(train.find_data(cfg_with(data_dir=str(data), block_size=64)), str(data), 51200)


@pytest.mark.slow
def test_ddp_resumes_exactly_after_a_kill_and_a_sigterm(bins, tmp_path):
    """Two ranks on gloo, fp16 with loss scaling, dropout 0.1. Run A: 2N steps straight. Run B: the same
    settings; past its step-N checkpoint, torchrun alone is SIGKILLed, and its workers must not outlive
    it. B resumes, and a SIGTERM to torchrun makes it save the step in flight and stop. C resumes that to
    2N: its log is A's, step for step, to the last bit."""
    N = 4
    common = [*TINY, f"--data_dir={bins}", "--dtype=float16", "--dropout=0.1", f"--lr_decay_iters={2 * N}",
              f"--eval_interval={N}", f"--save_interval={N}", f"--keep_every={N}"]
    a, b = tmp_path / "a", tmp_path / "b"
    run([*common, f"--out_dir={a}", f"--max_iters={2 * N}"], nproc=2)

    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc = run([*common, f"--out_dir={b}", f"--max_iters={10 * N}"], nproc=2, **quiet)
    workers = []
    try:
        wait_for_step(proc, b, N + 1)
        workers = descendants(proc.pid)
        assert len(workers) >= 2
        os.kill(proc.pid, signal.SIGKILL)  # torchrun alone, as the OOM killer would
        proc.wait()
        deadline = time.time() + 60
        while any(process_states().get(p, ("Z",))[0] != "Z" for p in workers):  # a zombie has exited
            assert time.time() < deadline, "torchrun's workers outlived it by 60 s"
            time.sleep(0.1)
    finally:
        for p in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
    assert torch.load(b / "ckpt.pt", weights_only=True)["iter"] == N

    old_log = (b / "log.jsonl").stat().st_ino
    proc = run([*common, f"--out_dir={b}", f"--max_iters={2 * N}", "--init_from=resume"], nproc=2, **quiet)
    try:
        wait_for_step(proc, b, N + 1, old_log)
        proc.send_signal(signal.SIGTERM)  # a scheduler's preemption; torchrun passes it on to the workers
        assert proc.wait(timeout=300) != 0
    finally:
        kill_tree(proc.pid)
    stopped = torch.load(b / "ckpt.pt", weights_only=True)
    assert N < stopped["iter"] < 2 * N and stopped["iter"] == max(r["iter"] for r in read_log(b))

    run([*common, f"--out_dir={b}", f"--max_iters={2 * N}", "--init_from=resume"], nproc=2)
    log_a, log_c = read_log(a), read_log(b)
    strip = lambda log: [{k: r.get(k) for k in ("iter", "loss", "grad_norm", "lr", "scale", "val_loss", "train_loss")} for r in log]
    assert strip(log_c) == strip(log_a)  # every step once, same losses, grad norms, eval losses
    assert [r["iter"] for r in log_a if "loss" in r] == list(range(1, 2 * N + 1))

    # the loss falls, the files are there and load
    evals = [r for r in log_a if "val_loss" in r]
    assert [r["iter"] for r in evals] == [0, N, 2 * N] and evals[-1]["val_loss"] < evals[0]["val_loss"] - 1.0
    steps = [r for r in log_a if "loss" in r]
    assert all(r["tokens_per_sec"] > 0 and r["mfu"] is None and r["max_rss_gib"] > 0.1 for r in steps)
    assert steps[-1]["epoch"] == pytest.approx(2 * N * 8 / train.n_windows(str(bins / "train.bin"), 64))
    assert {p.name for p in a.iterdir()} == {"ckpt.pt", f"ckpt_{N}.pt", f"ckpt_{2 * N}.pt", "log.jsonl", "loss.svg"}
    ET.parse(a / "loss.svg")
    ckpt = torch.load(a / "ckpt.pt", weights_only=True)
    assert ckpt["iter"] == 2 * N and len(ckpt["rng"]) == 2 and ckpt["config"]["dtype"] == "float16"
    model = load_model(a)
    assert model.config.n_layer == PhiConfig.preset("tiny").n_layer


def test_resume_on_other_bins_is_refused(bins, tmp_path):
    """The checkpoint's data fingerprint: bins made again from other sources, or edited in place, stop a
    resume with one line; the same bins elsewhere are fine."""
    cfg = cfg_with(data_dir=str(bins), out_dir="out/x", block_size=64)
    ckpt = {"data": train.data_fingerprint(train.find_data(cfg), str(bins))}
    moved = tmp_path / "moved"
    shutil.copytree(bins, moved)
    train.check_same_data(ckpt, train.data_fingerprint(train.find_data(cfg_with(data_dir=str(moved), block_size=64)), str(moved)), cfg)
    tokens = np.fromfile(moved / "train.bin", dtype=np.uint16)
    tokens[len(tokens) // 2] += 1  # one token, same sizes, same meta.json (64 slices of 4 KiB cover this small bin)
    tokens.tofile(moved / "train.bin")
    edited = train.data_fingerprint(train.find_data(cfg_with(data_dir=str(moved), block_size=64)), str(moved))
    with pytest.raises(SystemExit, match=r"^train.py: error: the data in .* is not what out/x/ckpt.pt was trained on "
                                         r"\(train.bin ([\d,]+) -> \1 tokens, val.bin"):
        train.check_same_data(ckpt, edited, cfg)
    ckpt_without = {}
    train.check_same_data(ckpt_without, edited, cfg)  # a checkpoint from before fingerprints: nothing to check


def test_finetune_from_checkpoint_starts_fresh(bins, tmp_path):
    """init_from=<checkpoint> takes the weights only: step 0, a new optimizer, a new log."""
    base = tmp_path / "base"
    run([*TINY, f"--data_dir={bins}", f"--out_dir={base}", "--max_iters=2", "--eval_interval=0", "--dtype=bfloat16"])
    ft = tmp_path / "ft"
    run([*TINY, f"--data_dir={bins}", f"--out_dir={ft}", "--max_iters=1", "--eval_interval=0", "--dtype=float32",
         f"--init_from={base / 'ckpt.pt'}", "--dropout=0.0", "--block_size=32"])
    ckpt_base, ckpt_ft = (torch.load(p / "ckpt.pt", weights_only=True) for p in (base, ft))
    assert ckpt_base["iter"] == 2 and ckpt_ft["iter"] == 1 and [r["iter"] for r in read_log(ft)] == [1]
    assert ckpt_ft["optimizer"]["state"][0]["step"].item() == 1  # a fresh AdamW, not the base run's
    assert ckpt_ft["model_config"]["attn_pdrop"] == 0.0
    # finetuned on 32-token windows, the model keeps the 64-token context it was pretrained on
    assert ckpt_ft["config"]["block_size"] == 32 and ckpt_ft["model_config"]["block_size"] == 64


def test_init_from_hugging_face_dir_and_out_dir(tmp_path):
    """A Hugging Face directory and a train out_dir both give the same weights, with train.py's dropout."""
    torch.manual_seed(0)
    source = Phi(PhiConfig.preset("tiny"))
    source.save_pretrained(tmp_path / "hf")
    (tmp_path / "run").mkdir()
    train.save_checkpoint(tmp_path / "run" / "ckpt.pt", {"model": source.state_dict(), "model_config": vars(source.config)})
    for init_from in (tmp_path / "hf", tmp_path / "run"):
        cfg = cfg_with(init_from=str(init_from), dropout=0.1, block_size=64, attention="sdpa")
        model, ckpt = train.build_model(cfg, torch.device("cpu"))
        assert ckpt is None and model.config.attn_pdrop == model.config.resid_pdrop == 0.1
        assert all(torch.equal(v, source.state_dict()[k]) for k, v in model.state_dict().items())
    with pytest.raises(SystemExit, match="init_from 'nowhere' is not scratch, resume"):
        train.build_model(cfg_with(init_from="nowhere"), torch.device("cpu"))
