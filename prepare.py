"""
prepare.py: the CodeGen-compatible tokenizer, and (below) any corpus -> token bins.

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

import contextlib
import functools
import gzip
import json
import os
import tempfile

import tiktoken

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
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def iter_jsonl(path, skipped=None):
    """Yield the JSON objects of a .jsonl or .jsonl.gz file. A malformed line (bad JSON, not an
    object, a torn last line from a killed writer) is skipped and recorded in `skipped` as (where, reason)."""
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if not isinstance(row, dict):
                if skipped is not None:
                    skipped.append((f"{path}:{lineno}", "malformed JSON line"))
                continue
            yield row
