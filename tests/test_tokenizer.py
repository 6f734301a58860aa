"""The tokenizer gives exactly the ids of a Hugging Face fast tokenizer built the CodeGen way."""
import pathlib
import sysconfig

import pytest

from prepare import EOT, N_VOCAB, get_tokenizer

tokenizers = pytest.importorskip("tokenizers")


def _bytes_to_unicode():
    """GPT-2's reversible byte -> printable-character map (what byte-level BPE vocabularies store)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _merges_from_ranks(ranks):
    """Recover BPE merges from a rank table: BPE on each token's bytes, using only lower ranks,
    ends with exactly two parts, and those two are the merge that made the token."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) == 1:
            continue
        parts = [bytes([b]) for b in token]
        while len(parts) > 2:
            best = min(range(len(parts) - 1), key=lambda i: ranks.get(parts[i] + parts[i + 1], 1 << 60))
            parts[best:best + 2] = [parts[best] + parts[best + 1]]
        merges.append((parts[0], parts[1]))
    return merges


@pytest.fixture(scope="module")
def hf_tokenizer():
    """The reference: HF's BPE + ByteLevel on r50k's ranks, plus CodeGen's added tokens in CodeGen's order."""
    import tiktoken
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders

    ranks = tiktoken.get_encoding("r50k_base")._mergeable_ranks
    b2u = _bytes_to_unicode()
    enc = lambda b: "".join(b2u[x] for x in b)
    vocab = {enc(tok): rank for tok, rank in ranks.items()}
    vocab["<|endoftext|>"] = EOT
    merges = [(enc(a), enc(b)) for a, b in _merges_from_ranks(ranks)]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_tokens([" " * n for n in reversed(range(2, 32))] + ["\t" * n for n in reversed(range(2, 10))])
    return tok


EDGE_CASES = [
    " ", "  ", " " * 31, " " * 32, " " * 40, " " * 62, " " * 63, " " * 64,
    " x", "  x", " " * 31 + "x", " " * 32 + "x", " " * 40 + "return",
    "\t", "\t\t", "\t" * 9, "\t" * 10, "\t" * 11 + "x", " \t \t", "\t  \t\t ", "  \t\t  x",
    "a\r\nb", "x = 1\r\n    y = 2\r\n", "\r\n\r\n  \r\n",
    "héllo wörld", "日本語のテキスト", "emoji 🙂🙂 ok", "ünïcödé\n\t\tcafé",
    "<|endoftext|>", "a<|endoftext|>b", "x\n\n\n", "trailing   ", "x \n  y", "'s 're   've",
    "def f(x):\n    if x:\n        return 1\n    return 0\n",
]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_cases_match_hf(hf_tokenizer, text):
    tok = get_tokenizer()
    assert tok.encode(text) == hf_tokenizer.encode(text).ids
    assert tok.decode(tok.encode(text)) == text


def _stdlib_files(limit=300):
    files = sorted(pathlib.Path(sysconfig.get_paths()["stdlib"]).rglob("*.py"))
    return files[:: max(1, len(files) // limit)]


def test_stdlib_sources_match_hf(hf_tokenizer):
    tok = get_tokenizer()
    checked = 0
    for path in _stdlib_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        ours = tok.encode(text)
        assert ours == hf_tokenizer.encode(text).ids, path
        assert tok.decode(ours) == text
        checked += 1
    assert checked >= 100


def test_ids_and_sizes():
    tok = get_tokenizer()
    assert tok.n_vocab == N_VOCAB == 50295
    assert tok.eot == EOT == 50256
    assert tok.encode("  ") == [50286] and tok.encode(" " * 31) == [50257]
    assert tok.encode("\t\t") == [50294] and tok.encode("\t" * 9) == [50287]
    assert tok.decode([EOT]) == "<|endoftext|>"
