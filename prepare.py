"""
prepare.py: the CodeGen-compatible tokenizer, and (below) any corpus -> token bins.

    python prepare.py --out data/stdlib              # this Python's own stdlib source, offline
    python prepare.py --source data/code.jsonl --source data/textbooks.jsonl@epochs=2 --out data/codetextbook
    python prepare.py --source "hf://datasets/jinaai/code_exercises@refs%2Fconvert%2Fparquet/default/train/0000.parquet@field=problem+solution" --out data/exercises
    python prepare.py --help                         # every kind of source, and the options

A source is a directory, a .jsonl[.gz] / .parquet / other file, an http(s) URL or a Hugging Face
dataset file, plus @epochs=, @field=, @glob= options. --out DIR gets train.bin and val.bin
(np.uint16, eot after every document) and, last, meta.json: only then is DIR finished (load_split).

The tokenizer
-------------
phi-1 uses the tokenizer of Salesforce/codegen-350M-mono (paper, section 2.3):
GPT-2's byte-level BPE plus 38 tokens for runs of whitespace, because Python
source is full of indentation and GPT-2 spends one token per space on it.

    n spaces, 2 <= n <= 31  ->  id 50288 - n   (31 spaces = 50257 ... 2 spaces = 50286)
    n tabs,   2 <= n <= 9   ->  id 50296 - n   (9 tabs = 50287 ... 2 tabs = 50294)
    <|endoftext|>           ->  50256          (50295 ids in all; phi-1 pads to 51200)

Hugging Face matches those added tokens leftmost-longest *before* BPE runs, and
BPE then sees each stretch of text between them on its own. So 40 spaces are
[31 spaces][9 spaces], 32 spaces + "x" are [31 spaces][" x"].

We get the same ids from tiktoken's Rust core by teaching it two things:
  1. the 38 whitespace runs are ordinary entries of the rank table
     (r50k has no multi-space entries, so nothing collides);
  2. its pre-tokenizer regex tries those runs first, and GPT-2's whitespace
     rules never swallow the start of such a run, so each run is always a
     piece of its own, exactly as if the text had been split around it.
tiktoken's special-token mechanism would not do: its alternation is
first-match, not longest-match, and it would split pieces differently.

Usage:
    from prepare import get_tokenizer
    tok = get_tokenizer()
    ids = tok.encode("def f():\\n        return 1")
    assert tok.decode(ids) == "def f():\\n        return 1"
"""

import argparse
import collections
import concurrent.futures
import contextlib
import fnmatch
import functools
import gzip
import hashlib
import json
import math
import os
import random
import re
import shlex
import sys
import sysconfig
import tempfile
import time
import urllib.parse

import numpy as np
import requests
import tiktoken
from tqdm import tqdm

EOT = 50256
N_VOCAB = 50295  # 50257 GPT-2 ids + 38 whitespace runs


def _whitespace_tokens():
    """The 38 CodeGen whitespace runs as (bytes, id), in the order HF added them."""
    spaces = [(b" " * n, 50288 - n) for n in range(31, 1, -1)]
    tabs = [(b"\t" * n, 50296 - n) for n in range(9, 1, -1)]
    return spaces + tabs


# A whitespace character that does not begin a run of 2+ spaces or 2+ tabs.
# GPT-2's rules below use it instead of \s, so they stop where a run begins,
# just as they would stop at the end of the text between two added tokens.
_W = r"(?:(?! {2}|\t{2})\s)"
CODEGEN_PATTERN = "|".join([
    r" {2,31}",                 # the added tokens come first: greedy = longest
    r"\t{2,9}",
    r"'(?:[sdmt]|ll|ve|re)",    # from here on: r50k's pattern, with \s -> _W
    r" ?\p{L}++",
    r" ?\p{N}++",
    r" ?[^\s\p{L}\p{N}]++",
    _W + r"++$",
    _W + r"+(?!\S)",
    _W,
])


class Tokenizer(tiktoken.Encoding):
    """A tiktoken Encoding whose encode() treats every string as plain text.

    The literal text "<|endoftext|>" inside a document is encoded as text, never
    as the separator (as in nanoGPT's encode_ordinary): documents cannot forge
    document boundaries. The separator is added by whoever joins documents.
    """

    @property
    def eot(self):
        return self.eot_token

    def encode(self, text):
        return self.encode_ordinary(text)


@functools.lru_cache(maxsize=None)
def get_tokenizer():
    """The CodeGen tokenizer (ids identical to Salesforce/codegen-350M-mono)."""
    base = tiktoken.get_encoding("r50k_base")  # downloads once into TIKTOKEN_CACHE_DIR
    ranks = dict(base._mergeable_ranks)
    for piece, rank in _whitespace_tokens():
        assert piece not in ranks, "r50k unexpectedly has a whitespace-run token"
        ranks[piece] = rank
    return Tokenizer(
        name="codegen",
        pat_str=CODEGEN_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": EOT},
    )


# ----------------------------------------------------------------------------
# Small file helpers that every script shares (import them; do not copy them).

@contextlib.contextmanager
def atomic_write(path, mode="w", **kwargs):
    """Open a temporary file beside `path`; on success rename it over `path`, on error delete it.
    A crash therefore leaves either the old file or the complete new one, never half of one."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-" + os.path.basename(path))
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def duration(seconds):
    """12s, 3m05s or 2h07m: a wall time as people read it."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds < 3600 else f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


def iter_jsonl(path, skipped=None):
    """Yield the JSON objects of a .jsonl or .jsonl.gz file. A bad line (invalid UTF-8, bad JSON,
    not an object, a torn last line from a killed writer) is skipped and recorded in `skipped`
    as (where, reason); the lines around it are still read."""
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "rb") as f:  # bytes, so one bad line cannot poison the decoding of the rest
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                row, reason = json.loads(raw.decode("utf-8")), "malformed JSON line"
            except UnicodeDecodeError:
                row, reason = None, "invalid UTF-8"
            except json.JSONDecodeError:
                row, reason = None, "malformed JSON line"
            if not isinstance(row, dict):
                if skipped is not None:
                    skipped.append((f"{path}:{lineno}", reason))
                continue
            yield row


# ----------------------------------------------------------------------------
# Reading documents from anywhere: a directory, JSONL, parquet, a URL, the Hub.

DEFAULT_SOURCE = sysconfig.get_paths()["stdlib"]  # every Python ships it: a corpus that needs no network
MAX_BYTES = 1_000_000  # a source file over 1 MB is nearly always data or generated code, not prose or code to learn
CACHE_DIR = os.environ.get("PHI1_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "phi1"))
SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", "node_modules"}  # installed copies of other code
RECORD_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")  # the Hub's .json files are JSON lines too
_OPTION = re.compile(r"@(epochs|field|glob)=([^@]*)$")


class DownloadError(Exception):
    """A download that retrying will not fix (404, no access) or that ran out of retries."""


def parse_source(spec):
    """'LOCATION[@epochs=E][@field=F][@glob=G]' -> (LOCATION, {option: value})."""
    options = {}
    while m := _OPTION.search(spec):
        options.setdefault(m[1], m[2])
        spec = spec[:m.start()]
    return spec, options


def hf_url(location):
    """hf://datasets/<owner>/<name>[@revision]/<path> -> its resolve URL on the Hub (or on $HF_ENDPOINT)."""
    m = re.fullmatch(r"hf://datasets/([^/@]+/[^/@]+)(?:@([^/]+))?/(.+)", location)
    if not m:
        raise ValueError(f"{location}: expected hf://datasets/<owner>/<name>[@revision]/<path in the repo>")
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return f"{endpoint}/datasets/{m[1]}/resolve/{m[2] or 'main'}/{m[3]}"


def _cache_path(url, cache_dir):
    """Where `url` lives in the cache: host/path, keeping the file name (its suffix picks the reader)."""
    u = urllib.parse.urlsplit(url)
    parts = [p for p in urllib.parse.unquote(u.path).split("/") if p not in ("", ".", "..")] or ["index"]
    if u.query:  # same path, different query: a different file
        parts.insert(-1, hashlib.blake2b(u.query.encode(), digest_size=6).hexdigest())
    return os.path.join(cache_dir, u.netloc.replace(":", "_"), *parts)


def download(url, cache_dir=CACHE_DIR, retries=8, backoff=1.0, session=None):
    """Fetch `url` into the cache once and return its local path.

    The bytes go to PATH.part; an interrupted download resumes from there with an HTTP Range
    request, transient failures (connection errors, 429, 5xx, a body cut short) are retried with
    exponential backoff, and only a complete file is renamed to PATH, so a cached file is whole.
    $HF_TOKEN is sent to the Hub only (gated sets such as bigcode/the-stack-dedup need it).
    """
    path = _cache_path(url, cache_dir)
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    part = path + ".part"
    session = session or requests.Session()
    # identity: Content-Length and Range then count the bytes we store, not a compressed stream.
    headers = {"Accept-Encoding": "identity"}
    hub = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).netloc
    if os.environ.get("HF_TOKEN") and urllib.parse.urlsplit(url).netloc == hub:
        headers["Authorization"] = f"Bearer {os.environ['HF_TOKEN']}"
    for attempt in range(retries + 1):
        have = os.path.getsize(part) if os.path.exists(part) else 0
        try:
            with session.get(url, headers={**headers, "Range": f"bytes={have}-"} if have else headers,
                             stream=True, timeout=60) as r:
                if r.status_code in (401, 403):
                    raise DownloadError(f"{url}: HTTP {r.status_code}; for a gated dataset accept its terms "
                                        "on the Hub and set HF_TOKEN to an access token")
                if r.status_code == 416:  # our part is already past the end: start over
                    os.remove(part)
                    raise requests.HTTPError("HTTP 416")
                if r.status_code == 429 or r.status_code >= 500:
                    raise requests.HTTPError(f"HTTP {r.status_code}")
                if r.status_code not in (200, 206):
                    raise DownloadError(f"{url}: HTTP {r.status_code}")
                if r.status_code == 200:  # the server ignored Range: it sends the whole file again
                    have = 0
                size = int(r.headers.get("Content-Length", -1))
                with open(part, "ab" if have else "wb") as f:
                    for chunk in r.iter_content(1 << 16):  # a dropped connection loses at most one chunk
                        f.write(chunk)
                    f.flush()
                    os.fsync(f.fileno())
                if size >= 0 and os.path.getsize(part) != have + size:
                    raise requests.ConnectionError("connection closed before the end of the body")
            os.replace(part, path)
            return path
        except (requests.ConnectionError, requests.Timeout, requests.HTTPError,
                requests.exceptions.ChunkedEncodingError) as e:
            if attempt == retries:
                raise DownloadError(f"{url}: {e} (gave up after {retries + 1} tries; run again to resume)") from e
            time.sleep(min(60.0, backoff * 2 ** attempt) * random.uniform(0.5, 1.0))


def resolve(location, cache_dir=CACHE_DIR):
    """A local path for `location`, downloading hf:// and http(s):// sources into the cache."""
    if location.startswith("hf://"):
        location = hf_url(location)
    if location.startswith(("http://", "https://")):
        return download(location, cache_dir)
    if not os.path.exists(location):
        raise FileNotFoundError(f"{location}: no such file or directory")
    return location


def _pyarrow_parquet():
    try:
        import pyarrow.parquet
    except ImportError:
        raise ImportError("reading parquet needs pyarrow, an optional extra: pip install pyarrow") from None
    return pyarrow.parquet


def _skip(skipped, where, reason):
    if skipped is not None:
        skipped.append((where, reason))


def _problem(text, max_bytes):
    """Why `text` is not a usable document, or None if it is one."""
    if not text or text.isspace():
        return "empty"
    if "\0" in text:
        return "binary (NUL byte)"
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return "invalid Unicode (lone surrogate)"
    return "over --max-bytes" if size > max_bytes else None


def _record(where, row, fields, max_bytes, skipped):
    """The document in one JSONL/parquet row: its fields joined, if they are all strings."""
    values = [row.get(f) for f in fields]
    bad = next((f for f, v in zip(fields, values) if not isinstance(v, str)), None)
    if bad is not None:
        _skip(skipped, where, f"no string '{bad}' field")
        return
    text = "".join(values)
    if reason := _problem(text, max_bytes):
        _skip(skipped, where, reason)
    else:
        yield where, text


def _iter_parquet(path, fields, max_bytes, skipped):
    pq = _pyarrow_parquet()
    try:
        pf = pq.ParquetFile(path)
        missing = [f for f in fields if f not in pf.schema_arrow.names]
        if missing:
            _skip(skipped, path, f"no '{missing[0]}' column")
            return
        i = 0
        for batch in pf.iter_batches(batch_size=256, columns=fields):  # streaming: one row group slice at a time
            for values in zip(*(batch.column(f).to_pylist() for f in fields)):
                yield from _record(f"{path}#{i}", dict(zip(fields, values)), fields, max_bytes, skipped)
                i += 1
    except (OSError, ValueError):  # pyarrow's ArrowInvalid/ArrowIOError derive from these
        _skip(skipped, path, "unreadable parquet")


def _read_text(path, max_bytes):
    """(text, None) for a usable file, else (None, why not)."""
    try:
        if os.path.getsize(path) > max_bytes:  # decided before reading: a 10 GB log never enters memory
            return None, "over --max-bytes"
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None, "unreadable"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "invalid UTF-8"
    return text, _problem(text, max_bytes)


def _iter_file(path, fields, max_bytes, skipped):
    """Documents of one file: a row each for JSONL and parquet, else the whole file is one document."""
    name = path.lower()
    if name.endswith(RECORD_SUFFIXES):
        for i, row in enumerate(iter_jsonl(path, skipped)):
            yield from _record(f"{path}#{i}", row, fields, max_bytes, skipped)
    elif name.endswith(".parquet"):
        yield from _iter_parquet(path, fields, max_bytes, skipped)
    else:
        text, reason = _read_text(path, max_bytes)
        if reason:
            _skip(skipped, path, reason)
        else:
            yield path, text


def _iter_dir(root, pattern, fields, max_bytes, skipped):
    """Files under `root` whose name matches `pattern`, in sorted order, so every run sees the same corpus."""
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: _skip(skipped, e.filename, "unreadable")):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS)
        for name in sorted(fnmatch.filter(filenames, pattern)):
            path = os.path.join(dirpath, name)
            if os.path.isfile(path):
                yield from _iter_file(path, fields, max_bytes, skipped)
            else:  # a FIFO would block forever, a dangling symlink cannot be read
                _skip(skipped, path, "not a regular file")


def iter_documents(source, glob="*.py", max_bytes=MAX_BYTES, skipped=None, cache_dir=CACHE_DIR):
    """Yield (doc_id, text) for every document of a source spec (see parse_source; @epochs is ignored here).

    Bad input never stops the stream: invalid UTF-8, binary files, empty files, files or records over
    max_bytes, malformed JSON lines and missing or non-string text fields are appended to `skipped`
    as (where, reason). doc_id is a file path, or PATH#N for the N-th record of a JSONL/parquet file.
    A missing path or a failed download raises (FileNotFoundError, DownloadError).
    """
    location, options = parse_source(os.fspath(source))
    fields = options.get("field", "text").split("+")
    path = resolve(location, cache_dir)
    if os.path.isdir(path):
        yield from _iter_dir(path, options.get("glob", glob), fields, max_bytes, skipped)
    else:
        yield from _iter_file(path, fields, max_bytes, skipped)


# ----------------------------------------------------------------------------
# Token bins: worker processes tokenize, the main process streams what they return to disk.

BATCH_CHARS = 1 << 18  # text per task: big enough to amortize pickling, small enough to balance the workers
SPLITS = ("train", "val")
_EOT = np.array([EOT], dtype=np.uint32)


def placement(text, val_fraction, epochs):
    """(split, copies) of a document, from a hash of its text alone.

    Hashing the text rather than counting positions makes the split independent of order, worker
    count and the other sources, and puts exact duplicates in the same split: val never holds a
    copy of a train document. copies = floor(epochs), plus one for a hash-chosen fraction
    (epochs % 1) of the documents: @epochs=0.5 keeps a fixed half of a source.
    """
    h = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
    u_split, u_copy = (int.from_bytes(h[i:i + 8], "little") / 2 ** 64 for i in (0, 8))
    return ("val" if u_split < val_fraction else "train"), int(epochs) + (u_copy < epochs % 1)


def _encode_batch(job):
    """Worker: tokenize the documents of one batch that this pass over their source keeps.
    Returns {split: (uint16 token bytes, eot after each document; number of documents)}."""
    epoch, epochs, val_fraction, texts = job
    tok = get_tokenizer()
    pieces = {split: [] for split in SPLITS}
    for text in texts:
        split, copies = placement(text, val_fraction, epochs)
        if epoch < copies and (split == "train" or epoch == 0):  # a val document is held out once
            # encode_to_numpy with no special tokens allowed = encode_ordinary, minus a Python list of
            # ints; then eot after the document, as phi-1 separates files (paper, section 2.3).
            pieces[split] += [tok.encode_to_numpy(text, disallowed_special=()), _EOT]
    return {s: (np.concatenate(p).astype(np.uint16).tobytes(), len(p) // 2) for s, p in pieces.items() if p}


def _tally(skipped, report, i):
    """Move skip records into counts plus the first few examples: a list of every skip would grow with the corpus."""
    for where, reason in skipped or ():
        report["sources"][i]["skipped"] += 1
        report["skipped"]["count"] += 1
        report["skipped"]["by_reason"][reason] += 1
        if len(report["skipped"]["examples"]) < 20:
            report["skipped"]["examples"].append([where, reason])
    if skipped:
        skipped.clear()


def _jobs(sources, args, report):
    """(source index, job) for batches of about BATCH_CHARS characters; one pass over a source per epoch."""
    for i, (spec, epochs) in enumerate(sources):
        for epoch in range(math.ceil(epochs)):
            skipped = [] if epoch == 0 else None  # a bad file is counted once, not once per pass
            batch, size = [], 0
            for _, text in iter_documents(spec, args.glob, args.max_bytes, skipped, args.cache_dir):
                batch.append(text)
                size += len(text)
                if size >= BATCH_CHARS:
                    yield i, (epoch, epochs, args.val_fraction, batch)
                    batch, size = [], 0
                    _tally(skipped, report, i)
            if batch:
                yield i, (epoch, epochs, args.val_fraction, batch)
            _tally(skipped, report, i)


def _write(pending, files, report, bar):
    """Wait for the oldest task and append its tokens: results are written in submission order."""
    i, future = pending.popleft()
    for split, (data, documents) in future.result().items():
        files[split].write(data)
        report["sources"][i][split]["tokens"] += len(data) // 2
        report["sources"][i][split]["documents"] += documents
        bar.update(len(data) // 2)


def _check_sources(args):
    """[(spec, epochs)], after downloading every remote source: a bad URL fails now, not hours in."""
    sources = []
    for spec in args.source or [DEFAULT_SOURCE]:
        location, options = parse_source(spec)
        epochs = options.get("epochs", "1")
        if not re.fullmatch(r"\d+(\.\d*)?|\.\d+", epochs):
            raise ValueError(f"{spec}: @epochs= wants a number >= 0, like 2 or 0.5")
        if resolve(location, args.cache_dir).endswith(".parquet"):
            _pyarrow_parquet()
        sources.append((spec, float(epochs)))
    if not 0 <= args.val_fraction < 1 or args.workers < 1:
        raise ValueError("--val-fraction must be in [0, 1) and --workers >= 1")
    return sources


def prepare(args, command):
    """Tokenize args.source into args.out/{train,val}.bin and write meta.json; returns meta."""
    sources = _check_sources(args)
    os.makedirs(args.out, exist_ok=True)
    meta_path = os.path.join(args.out, "meta.json")
    with contextlib.suppress(FileNotFoundError):
        os.remove(meta_path)  # from here until the new meta.json lands, nothing in OUT counts as finished
    for name in os.listdir(args.out):  # temporary bins left by a killed run (atomic_write's naming)
        if name.startswith((".tmp-train.bin", ".tmp-val.bin")):
            os.remove(os.path.join(args.out, name))
    tok = get_tokenizer()  # built before the fork, so the workers inherit it
    report = {"sources": [{"source": spec, "epochs": epochs, "skipped": 0,
                           **{s: {"tokens": 0, "documents": 0} for s in SPLITS}} for spec, epochs in sources],
              "skipped": {"count": 0, "by_reason": collections.Counter(), "examples": []}}
    bins = {s: os.path.join(args.out, f"{s}.bin") for s in SPLITS}
    # A process pool, not Pool.imap: we submit within a bounded window, where imap's feeder thread
    # would read the whole corpus ahead into memory whenever reading outpaces tokenizing; and a
    # worker killed by the OS raises BrokenProcessPool here instead of hanging the run forever.
    with concurrent.futures.ProcessPoolExecutor(args.workers) as pool, \
            atomic_write(bins["train"], "wb") as train, atomic_write(bins["val"], "wb") as val, \
            tqdm(desc="tokenizing", unit="tok", unit_scale=True) as bar:
        pending = collections.deque()
        for i, job in _jobs(sources, args, report):
            pending.append((i, pool.submit(_encode_batch, job)))
            if len(pending) >= 2 * args.workers:
                _write(pending, {"train": train, "val": val}, report, bar)
        while pending:
            _write(pending, {"train": train, "val": val}, report, bar)
    splits = {s: {k: sum(src[s][k] for src in report["sources"]) for k in ("tokens", "documents")} for s in SPLITS}
    meta = {
        "tokenizer": tok.name, "vocab_size": tok.n_vocab, "eot": tok.eot, "dtype": "uint16",
        "layout": "documents back to back, eot after each one",
        "splits": splits, "sources": report["sources"],
        "skipped": {**report["skipped"], "by_reason": dict(report["skipped"]["by_reason"].most_common())},
        "val_fraction": args.val_fraction, "max_bytes": args.max_bytes, "glob": args.glob,
        "command": command,
    }
    with atomic_write(meta_path) as f:  # last: its presence says both bins are complete
        json.dump(meta, f, indent=1)
    return meta


def load_split(out_dir, split="train"):
    """OUT/<split>.bin as a read-only np.memmap of uint16 tokens, only if prepare.py finished it.

    meta.json is written after both bins are complete and renamed into place, so a directory
    without it (a run still going, killed or crashed), or whose sizes disagree with it, raises.
    """
    try:
        with open(os.path.join(out_dir, "meta.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        raise ValueError(f"{out_dir}: no complete meta.json, so prepare.py never finished here; run it again") from None
    if meta.get("tokenizer") != "codegen" or meta.get("vocab_size") != N_VOCAB:
        raise ValueError(f"{out_dir}: made with tokenizer {meta.get('tokenizer')!r}, vocab {meta.get('vocab_size')}, "
                         f"not codegen/{N_VOCAB}")
    path, tokens = os.path.join(out_dir, f"{split}.bin"), meta["splits"][split]["tokens"]
    if not os.path.isfile(path) or os.path.getsize(path) != 2 * tokens:
        raise ValueError(f"{path}: missing or not the {tokens} tokens meta.json promises")
    return np.memmap(path, dtype=np.uint16, mode="r") if tokens else np.zeros(0, dtype=np.uint16)


SOURCES_HELP = f"""\
a source SPEC is LOCATION[@epochs=E][@field=F][@glob=G]; LOCATION is one of
  DIR                   every file under DIR whose name matches --glob / @glob (hidden dirs
                        and site-packages skipped), each file one document
  FILE.jsonl[.gz]       one document per line, from its "text" field (or @field=F)
  FILE.parquet          one document per row (needs: pip install pyarrow)
  FILE                  any other file is one document
  https://...           downloaded into --cache-dir (resumable), then read as above
  hf://datasets/OWNER/NAME[@REVISION]/PATH   a file of a Hugging Face dataset; HF_TOKEN is sent
                        for gated ones (e.g. bigcode/the-stack-dedup)
@epochs=E repeats a source E times in train (E=2: twice; E=0.5: a hash-chosen half);
@field=a+b joins columns a and b. Mixing phi-1's CodeTextbook, for example:
  python prepare.py --source filtered_code.jsonl textbooks.jsonl@epochs=2 --out data/codetextbook
default source (no --source): {DEFAULT_SOURCE}
"""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        description="Tokenize corpora into OUT/train.bin and OUT/val.bin (np.uint16, eot after every "
                    "document, split by a hash of each document) and OUT/meta.json (written last).",
        epilog=SOURCES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", action="extend", nargs="+", metavar="SPEC", help="corpus to add (repeatable)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--glob", default="*.py", help="file names to take from directories (default: %(default)s)")
    parser.add_argument("--val-fraction", type=float, default=0.005, help="share of documents held out (default: %(default)s)")
    parser.add_argument("--max-bytes", type=int, default=MAX_BYTES, help="skip larger documents (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="tokenizer processes (default: %(default)s)")
    parser.add_argument("--cache-dir", default=CACHE_DIR, help="where downloads go (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        meta = prepare(args, shlex.join(["python", "prepare.py", *argv]))
    except (OSError, ValueError, ImportError, DownloadError, concurrent.futures.BrokenExecutor) as e:
        sys.exit(f"prepare.py: error: {e}")
    for s in SPLITS:
        print(f"{os.path.join(args.out, s + '.bin')}: {meta['splits'][s]['tokens']:,} tokens, "
              f"{meta['splits'][s]['documents']:,} documents")
    skipped = meta["skipped"]
    print(f"skipped {skipped['count']:,} inputs" + "".join(f"; {n:,} {r}" for r, n in skipped["by_reason"].items()))
    if meta["splits"]["val"]["documents"] == 0:
        print("warning: val.bin is empty; raise --val-fraction", file=sys.stderr)


if __name__ == "__main__":
    main()
