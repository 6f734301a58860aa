"""prepare.py: every document comes back exactly once, bad input is skipped and reported, the split
is deterministic, an interrupted run leaves nothing a later step accepts, downloads resume and retry
(against a loopback HTTP server: no network needed)."""
import collections
import gzip
import http.server
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import prepare
from prepare import EOT, N_VOCAB, DownloadError, download, get_tokenizer, iter_documents, load_split, main

PREPARE = str(pathlib.Path(prepare.__file__))


def random_doc(rng):
    """Code-like text with the awkward parts: whitespace runs, tabs, CRLF, non-ASCII, the eot text."""
    pieces = ["def f(x):\n", " " * rng.randint(2, 40), "\t" * rng.randint(1, 12), "return x\r\n", "é日🙂",
              "<|endoftext|>", "'''doc'''", str(rng.random()), "\n\n", "  # comment", "x" * rng.randint(1, 50)]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) + rng.choice(["pass", "pass\n"])


def decode_documents(out, splits=("train", "val")):
    """All documents in train.bin + val.bin, by splitting at eot (a document's own text never encodes to it)."""
    tok, docs = get_tokenizer(), []
    for split in splits:
        ids = np.asarray(load_split(out, split))
        if len(ids):
            assert ids[-1] == EOT, "every document, the last one too, is followed by eot"
        ends = np.flatnonzero(ids == EOT)
        docs += [tok.decode(ids[a + 1:b].tolist()) for a, b in zip(np.r_[-1, ends[:-1]], ends)]
    return docs


def write_tree(root, docs):
    root.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(docs):
        (root / f"m{i:04d}.py").write_bytes(text.encode("utf-8"))
    return root


def run(*args):
    main([str(a) for a in args])


def test_every_document_comes_back_exactly_once(tmp_path):
    rng = random.Random(0)
    files = [random_doc(rng) for _ in range(150)] + ["x = '<|endoftext|>'\n", " " * 45 + "pass", "\ufeff# bom\n"]
    files.append(files[0])  # an exact duplicate is still two documents
    records = [random_doc(rng) for _ in range(60)]
    write_tree(tmp_path / "code", files)
    with gzip.open(tmp_path / "rows.jsonl.gz", "wt", encoding="utf-8") as f:
        for text in records:
            f.write(json.dumps({"text": text, "other": 1}) + "\n")
    out = tmp_path / "out"
    run("--source", tmp_path / "code", tmp_path / "rows.jsonl.gz", "--out", out, "--val-fraction", 0.3, "--workers", 2)

    assert collections.Counter(decode_documents(out)) == collections.Counter(files + records)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["tokenizer"] == "codegen" and meta["vocab_size"] == N_VOCAB == 50295
    assert meta["splits"]["val"]["documents"] > 0 and meta["splits"]["train"]["documents"] > 0
    assert sum(meta["splits"][s]["documents"] for s in ("train", "val")) == len(files) + len(records)
    assert [s["train"]["documents"] + s["val"]["documents"] for s in meta["sources"]] == [len(files), len(records)]
    assert meta["splits"]["train"]["tokens"] * 2 == (out / "train.bin").stat().st_size
    assert meta["command"].startswith("python prepare.py --source")


def test_bad_inputs_are_skipped_and_reported(tmp_path):
    d = tmp_path / "mixed"
    good = ["print('ok')\n", "x = 1\n", "y = 2\n", "z = 3\n"]
    write_tree(d, good[:2])
    (d / "latin1.py").write_bytes("caf\xe9 = 1\n".encode("latin-1"))
    (d / "binary.py").write_bytes(b"\x00\x01\x02ELF")
    (d / "empty.py").write_bytes(b"")
    (d / "blank.py").write_bytes(b"\n  \n")
    (d / "giant.py").write_bytes(b"a = 1\n" * 500)
    os.mkfifo(d / "pipe.py")  # reading it would block forever
    (d / "dangling.py").symlink_to(d / "missing.py")
    lines = [json.dumps({"text": good[2]}), "{not json", json.dumps({"txt": "wrong key"}), json.dumps({"text": 5}),
             json.dumps([1, 2]), '{"text": "\\ud800 lone surrogate"}', json.dumps({"text": "a\u0000b"}),
             json.dumps({"text": good[3]}), '{"text": "torn last li']
    (d / "rows.jsonl").write_text("\n".join(lines))
    out = tmp_path / "out"
    run("--source", d, "--glob", "*", "--max-bytes", 1000, "--out", out, "--workers", 1)

    assert sorted(decode_documents(out)) == sorted(good)
    skipped = json.loads((out / "meta.json").read_text())["skipped"]
    assert skipped["by_reason"] == {"invalid UTF-8": 1, "binary (NUL byte)": 2, "empty": 2, "over --max-bytes": 1,
                                    "not a regular file": 2, "malformed JSON line": 3, "no string 'text' field": 2,
                                    "invalid Unicode (lone surrogate)": 1}
    assert skipped["count"] == 14
    assert [str(d / "latin1.py"), "invalid UTF-8"] in skipped["examples"]


def test_split_is_deterministic_and_per_document(tmp_path):
    rng = random.Random(1)
    docs = [random_doc(rng) + f"#{i}" for i in range(300)]
    write_tree(tmp_path / "a", docs)
    write_tree(tmp_path / "b", docs[::-1][:200] + ["extra 1", "extra 2"])  # other order, fewer, more
    for name, src, workers in [("one", "a", 1), ("two", "a", 2), ("other", "b", 2)]:
        run("--source", tmp_path / src, "--out", tmp_path / name, "--val-fraction", 0.2, "--workers", workers)
    for split in ("train.bin", "val.bin"):  # same input: same bytes, whatever the worker count
        assert (tmp_path / "one" / split).read_bytes() == (tmp_path / "two" / split).read_bytes()

    val = {name: set(decode_documents(tmp_path / name, ["val"])) for name in ("one", "other")}
    shared = set(docs[::-1][:200])
    assert val["one"] & shared == val["other"] & shared  # a document's split depends on nothing else
    assert 20 < len(val["one"]) < 100  # ~20% of 300


def test_epochs_repeat_and_subsample_sources(tmp_path):
    rng = random.Random(2)
    a = [f"# a{i}\n" + random_doc(rng) for i in range(40)]
    b = [f"# b{i}\n" + random_doc(rng) for i in range(40)]
    c = [f"# c{i}\n" + random_doc(rng) for i in range(400)]
    for name, docs in [("a", a), ("b", b), ("c", c)]:
        write_tree(tmp_path / name, docs)
    out = tmp_path / "out"
    run("--source", f"{tmp_path / 'a'}@epochs=2", f"{tmp_path / 'b'}@epochs=0", f"{tmp_path / 'c'}@epochs=0.5",
        "--out", out, "--val-fraction", 0.1, "--workers", 2)
    got = collections.Counter(decode_documents(out))
    meta = json.loads((out / "meta.json").read_text())
    val_a = [t for t in a if prepare.placement(t, 0.1, 2)[0] == "val"]
    assert all(got[t] == (1 if t in val_a else 2) for t in a)  # train copies twice, val holds each once
    assert not any(got[t] for t in b)
    kept_c = sum(got[t] for t in c)
    assert all(got[t] <= 1 for t in c) and 140 < kept_c < 260  # a hash-chosen half of 400
    assert [s["train"]["documents"] + s["val"]["documents"] for s in meta["sources"]] == [80 - len(val_a), 0, kept_c]


def test_failure_midway_leaves_no_accepted_output(tmp_path, monkeypatch):
    rng = random.Random(3)
    write_tree(tmp_path / "src", [random_doc(rng) for _ in range(200)])
    out = tmp_path / "out"
    run("--source", tmp_path / "src", "--out", out, "--workers", 2)
    assert len(load_split(out, "train")) > 0  # a finished output, about to be overwritten

    real = prepare.iter_documents

    def failing(*args, **kwargs):
        for n, doc in enumerate(real(*args, **kwargs)):
            if n == 150:
                raise RuntimeError("disk on fire")
            yield doc
    monkeypatch.setattr(prepare, "iter_documents", failing)
    monkeypatch.setattr(prepare, "BATCH_CHARS", 500)  # many small batches: some are written before the failure
    with pytest.raises(RuntimeError):
        run("--source", tmp_path / "src", "--out", out, "--workers", 2)
    assert not (out / "meta.json").exists()
    assert not [p for p in os.listdir(out) if p.startswith(".tmp-")]  # temporary bins removed
    with pytest.raises(ValueError, match="never finished"):
        load_split(out, "train")


def test_killed_run_leaves_no_accepted_output(tmp_path):
    out = tmp_path / "out"
    write_tree(tmp_path / "src", ["a = 1\n", "b = 2\n"])
    run("--source", tmp_path / "src", "--out", out, "--workers", 1)
    fifo = tmp_path / "stream.jsonl"
    os.mkfifo(fifo)  # a source that never ends: prepare.py is surely midway when we kill it
    proc = subprocess.Popen([sys.executable, PREPARE, "--source", fifo, "--out", out, "--workers", "1"],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with open(fifo, "w") as f:
            for i in range(3000):
                f.write(json.dumps({"text": f"def f{i}(x):\n    return x * {i}\n" * 20}) + "\n")
            f.flush()
            deadline = time.time() + 60
            while not any(p.startswith(".tmp-train.bin") and (out / p).stat().st_size for p in os.listdir(out)):
                assert time.time() < deadline and proc.poll() is None, "prepare.py never started writing"
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)  # the process group: prepare.py and its workers
    finally:
        proc.wait()
    assert not (out / "meta.json").exists()
    with pytest.raises(ValueError, match="never finished"):
        load_split(out, "train")
    run("--source", tmp_path / "src", "--out", out, "--workers", 1)  # a rerun clears the debris
    assert not [p for p in os.listdir(out) if p.startswith(".tmp-")]
    assert sorted(decode_documents(out)) == ["a = 1\n", "b = 2\n"]


def test_load_split_rejects_mismatches(tmp_path):
    write_tree(tmp_path / "src", ["a = 1\n" * 100])
    out = tmp_path / "out"
    run("--source", tmp_path / "src", "--out", out, "--workers", 1, "--val-fraction", 0)
    assert len(load_split(out, "val")) == 0 and len(load_split(out, "train")) > 0
    with open(out / "train.bin", "r+b") as f:
        f.truncate(10)
    with pytest.raises(ValueError, match="promises"):
        load_split(out, "train")
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps({**meta, "vocab_size": 50257}))
    with pytest.raises(ValueError, match="vocab"):
        load_split(out, "train")


def test_cli_errors_are_one_line(tmp_path):
    r = subprocess.run([sys.executable, PREPARE, "--source", tmp_path / "nope", "--out", tmp_path / "o"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip() == f"prepare.py: error: {tmp_path / 'nope'}: no such file or directory"
    r = subprocess.run([sys.executable, PREPARE, "--source", f"{tmp_path}@epochs=x", "--out", tmp_path / "o"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "@epochs= wants a number >= 0" in r.stderr
    r = subprocess.run([sys.executable, PREPARE, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "hf://datasets/" in r.stdout and prepare.DEFAULT_SOURCE in r.stdout


def test_parquet_rows_and_joined_fields(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    table = pa.table({"problem": ["def f():\n", "def g():\n", None], "solution": ["    return 1\n", "    pass\n", "x"]})
    pq.write_table(table, tmp_path / "ex.parquet", row_group_size=2)
    skipped = []
    docs = list(iter_documents(f"{tmp_path / 'ex.parquet'}@field=problem+solution", skipped=skipped))
    assert docs == [(f"{tmp_path / 'ex.parquet'}#0", "def f():\n    return 1\n"),
                    (f"{tmp_path / 'ex.parquet'}#1", "def g():\n    pass\n")]
    assert skipped == [(f"{tmp_path / 'ex.parquet'}#2", "no string 'problem' field")]
    assert list(iter_documents(tmp_path / "ex.parquet", skipped=skipped)) == []
    assert skipped[-1] == (str(tmp_path / "ex.parquet"), "no 'text' column")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    assert list(iter_documents(tmp_path / "bad.parquet", skipped=skipped)) == []
    assert skipped[-1] == (str(tmp_path / "bad.parquet"), "unreadable parquet")


def test_parquet_without_pyarrow_says_how_to_install(tmp_path, monkeypatch, capsys):
    (tmp_path / "ex.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(SystemExit):
        run("--source", tmp_path / "ex.parquet", "--out", tmp_path / "out")
    with pytest.raises(ImportError, match="pip install pyarrow"):
        list(iter_documents(tmp_path / "ex.parquet"))


# ----------------------------------------------------------------------------
# Downloads, against a local server that can fail, cut bodies short and honour Range.

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        srv = self.server
        srv.log.append((self.path, dict(self.headers)))
        if srv.fail:
            srv.fail -= 1
            return self.send_error(srv.fail_status)
        if self.path not in srv.files:
            return self.send_error(404)
        data = srv.files[self.path]
        start = int(self.headers["Range"][len("bytes="):-1]) if "Range" in self.headers else 0
        body = data[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut:  # promise the whole body, send half, hang up
            srv.cut -= 1
            body = body[:len(body) // 2]
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.files, srv.log, srv.fail, srv.fail_status, srv.cut = {}, [], 0, 500, 0
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()


def test_download_resumes_a_partial_file(server, tmp_path):
    data = os.urandom(300_000)
    server.files["/d/blob.bin"] = data
    path = prepare._cache_path(server.url + "/d/blob.bin", tmp_path)
    os.makedirs(os.path.dirname(path))
    with open(path + ".part", "wb") as f:
        f.write(data[:123_456])
    assert download(server.url + "/d/blob.bin", tmp_path) == path
    assert open(path, "rb").read() == data and not os.path.exists(path + ".part")
    assert [h.get("Range") for _, h in server.log] == ["bytes=123456-"]
    assert download(server.url + "/d/blob.bin", tmp_path) == path and len(server.log) == 1  # cached


def test_download_retries_500s_and_cut_bodies(server, tmp_path):
    data = os.urandom(200_000)
    server.files["/x.bin"] = data
    server.fail, server.cut = 2, 1
    path = download(server.url + "/x.bin", tmp_path, retries=5, backoff=0.01)
    assert open(path, "rb").read() == data
    ranges = [h.get("Range") for _, h in server.log]
    assert ranges[:3] == [None, None, None]  # 500, 500, half the body: resumed after what arrived
    assert len(ranges) == 4 and 0 < int(ranges[3][len("bytes="):-1]) <= 100_000


def test_download_lands_atomically(server, tmp_path):
    server.files["/y.bin"] = b"y" * 300_000
    server.fail = 100
    with pytest.raises(DownloadError, match="gave up after 3 tries"):
        download(server.url + "/y.bin", tmp_path, retries=2, backoff=0.01)
    assert not os.path.exists(prepare._cache_path(server.url + "/y.bin", tmp_path))
    server.fail, server.cut = 0, 1
    with pytest.raises(DownloadError):
        download(server.url + "/y.bin", tmp_path, retries=0)
    path = prepare._cache_path(server.url + "/y.bin", tmp_path)
    assert not os.path.exists(path) and 0 < os.path.getsize(path + ".part") <= 150_000
    assert open(download(server.url + "/y.bin", tmp_path), "rb").read() == b"y" * 300_000


def test_hub_paths_token_and_refusals(server, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    rows = [{"markdown": "# Chapter 1\nText.\n"}, {"markdown": "# Chapter 2\n"}]
    server.files["/datasets/open-phi/textbooks/resolve/main/data/train.jsonl.gz"] = gzip.compress(
        "".join(json.dumps(r) + "\n" for r in rows).encode())
    spec = "hf://datasets/open-phi/textbooks/data/train.jsonl.gz@field=markdown"
    docs = [text for _, text in iter_documents(spec, cache_dir=tmp_path)]
    assert docs == [r["markdown"] for r in rows]
    assert server.log[-1][1]["Authorization"] == "Bearer hf_secret"
    assert prepare.hf_url("hf://datasets/a/b@refs%2Fconvert%2Fparquet/default/train/0000.parquet") == \
        f"{server.url}/datasets/a/b/resolve/refs%2Fconvert%2Fparquet/default/train/0000.parquet"

    server.files["/other.jsonl"] = b'{"text": "hi"}\n'  # another host than the Hub: the token stays home
    other = server.url.replace("127.0.0.1", "localhost") + "/other.jsonl"
    assert [t for _, t in iter_documents(other, cache_dir=tmp_path)] == ["hi"]
    assert "Authorization" not in server.log[-1][1]

    server.fail, server.fail_status = 1, 401
    with pytest.raises(DownloadError, match="HF_TOKEN"):
        download(f"{server.url}/datasets/bigcode/the-stack-dedup/resolve/main/x.parquet", tmp_path, backoff=0.01)
    assert len(server.log) == 3  # no retries on a refusal
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.url}/missing.jsonl", tmp_path, backoff=0.01)


@pytest.mark.slow
def test_default_source_is_the_stdlib(tmp_path):
    out = tmp_path / "out"
    run("--out", out)
    meta = json.loads((out / "meta.json").read_text())
    expected = sum(1 for _ in iter_documents(prepare.DEFAULT_SOURCE))
    assert meta["sources"][0]["source"] == prepare.DEFAULT_SOURCE
    assert meta["splits"]["train"]["documents"] + meta["splits"]["val"]["documents"] == expected > 1000
    assert meta["splits"]["train"]["tokens"] > 1_000_000 and meta["splits"]["val"]["tokens"] > 0
    train = load_split(out, "train")
    assert train.max() < N_VOCAB and (train == EOT).sum() == meta["splits"]["train"]["documents"]


def test_iter_jsonl_skips_invalid_utf8_lines_and_keeps_the_rest(tmp_path):
    from prepare import iter_jsonl
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b'{"text": "ok 1"}\n{"text": "bad \xff\xfe"}\n[1, 2]\n{"text": "ok 2"}\n{"text": "torn')
    skipped = []
    assert [r["text"] for r in iter_jsonl(path, skipped)] == ["ok 1", "ok 2"]
    assert [reason for _, reason in skipped] == ["invalid UTF-8", "malformed JSON line", "malformed JSON line"]
