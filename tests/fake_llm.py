"""
fake_llm.py: a loopback chat-completions server for tests, with faults on demand.

It speaks just enough of the OpenAI protocol (POST /v1/chat/completions, /v1/completions, /v1/embeddings,
GET /v1/models) for llm.chat(), llm.complete() and anything built on them, and it misbehaves the way real
endpoints do, so that tests can prove a client survives rate limits, crashes, hangs and cut bodies.

    from fake_llm import start, stop
    base_url, server = start(lambda messages, n: "hello", faults={1: "429", 2: "reset"})
    text, usage = llm.chat([{"role": "user", "content": "hi"}], api_base=base_url, model="fake")
    assert server.requests[-1]["fault"] is None and len(server.requests) == 3
    stop(server)

`respond(messages, request_count) -> str` writes the assistant's answer (request_count is
1-based and counts every request, faulty ones included). It may return {"text": str, "top_logprobs":
{token: logprob}} instead: a request with "logprobs": true then gets them for its first answer token, as
llama.cpp and OpenAI send them (a plain str: "logprobs": null, an endpoint without them).
On /v1/completions `messages` is the prompt, a str. As a real server does, the answer is cut before the
first of the request's `stop` strings.
`embed(texts) -> [vector, ...]` answers POST /v1/embeddings (404 without it). `reject` names request
fields answered with HTTP 400 "Unrecognized request argument supplied: FIELD", as OpenAI does. `faults` says which requests
misbehave: a dict {request_count: fault}, a list (fault of request 1, 2, ...), or a callable
request_count -> fault or None. The faults:

    "429"         HTTP 429 with Retry-After: <retry_after> (seconds; keep it 0 or 1 in tests)
    "500"         HTTP 500
    "slow"        sleep `slow_s` seconds, then answer (set the client's timeout below slow_s)
    "truncated"   HTTP 200 whose JSON body is cut in half (a consistent Content-Length)
    "incomplete"  HTTP 200 promising more bytes than it sends, then closing
    "reset"       close the connection with a TCP RST before any response
    "malformed"   HTTP 200 with valid JSON that holds no choices
"""

import contextlib
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("429", "500", "slow", "truncated", "incomplete", "reset", "malformed")


def _fault_for(faults, n):
    if faults is None:
        return None
    if callable(faults):
        return faults(n)
    if isinstance(faults, dict):
        return faults.get(n)
    return faults[n - 1] if n <= len(faults) else None


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status, body, headers=(), length=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data) if length is None else length))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):
        server = self.server
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        except ValueError:
            return self._send(400, {"error": "request body is not JSON"})
        with server.lock:
            server.count += 1
            n = server.count
            fault = _fault_for(server.faults, n)
            server.requests.append({"n": n, "fault": fault, "body": body, "time": time.time()})
        if self.path.rstrip("/").endswith("/embeddings") and server.embed:
            vectors = server.embed(body["input"])
            return self._send(200, {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": v}
                                                                for i, v in enumerate(vectors)]})
        chat = self.path.rstrip("/").endswith("/chat/completions")
        if not chat and not self.path.rstrip("/").endswith("/completions"):
            return self._send(404, {"error": "not found"})
        for field in server.reject:
            if field in body:
                return self._send(400, {"error": {"message": f"Unrecognized request argument supplied: {field}"}})
        if fault == "reset":
            # SO_LINGER with a zero timeout makes close() send RST: the client sees ECONNRESET.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if fault == "429":
            return self._send(429, {"error": "rate limited"}, [("Retry-After", str(server.retry_after))])
        if fault == "500":
            return self._send(500, {"error": "internal error"})
        if fault == "malformed":
            return self._send(200, {"id": "x", "object": "chat.completion", "choices": []})
        if fault == "slow":
            time.sleep(server.slow_s)
        messages = (body.get("messages") or []) if chat else str(body.get("prompt", ""))
        text, logprobs = server.respond(messages, n), None
        if isinstance(text, dict):
            top, text = text["top_logprobs"], text["text"]
            if body.get("logprobs"):
                first = max(top, key=top.get)
                logprobs = {"content": [{"token": first, "logprob": top[first], "top_logprobs": [
                    {"token": t, "logprob": lp} for t, lp in list(top.items())[:body.get("top_logprobs") or 0]]}]}
        stops = body.get("stop") or []
        text = min((text[:text.index(s)] for s in ([stops] if isinstance(stops, str) else stops) if s in text),
                   key=len, default=text)
        prompt_words = (sum(len(str(m.get("content", "")).split()) for m in messages) if chat
                        else len(messages.split()))
        choice = {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
        reply = {"id": f"fake-{n}", "object": "chat.completion" if chat else "text_completion",
                 "model": body.get("model", "fake"),
                 "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs, **choice}],
                 "usage": {"prompt_tokens": prompt_words, "completion_tokens": len(text.split()),
                           "total_tokens": prompt_words + len(text.split())}}
        data = json.dumps(reply).encode()
        if body.get("stream"):  # server-sent events, as llama.cpp and OpenAI stream an answer
            choice = reply["choices"][0]
            chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant"}, "logprobs": None}]},
                      {"choices": [{"index": 0, "delta": {"content": text}, "logprobs": logprobs}]},
                      {"choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]}]
            data = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"
        if fault == "truncated":
            return self._send(200, data[: len(data) // 2])
        if fault == "incomplete":
            self._send(200, data[: len(data) // 2], length=len(data))
            self.close_connection = True
            return
        with contextlib.suppress(OSError):  # a "slow" client may have hung up already
            self._send(200, data)

    def handle(self):
        with contextlib.suppress(OSError):  # resets and hung-up clients are expected here
            super().handle()


def start(respond, faults=None, retry_after=0, slow_s=2.0, embed=None, reject=()):
    """Serve on 127.0.0.1 at a free port in a daemon thread. Returns (base_url, server);
    server.requests records every request as {"n", "fault", "body", "time"}."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True  # a sleeping "slow" handler must not block shutdown
    server.respond, server.faults, server.embed, server.reject = respond, faults, embed, reject
    server.retry_after, server.slow_s = retry_after, slow_s
    server.lock, server.count, server.requests = threading.Lock(), 0, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1", server


def stop(server):
    server.shutdown()
    server.server_close()


@contextlib.contextmanager
def fake_llm(respond, faults=None, retry_after=0, slow_s=2.0, embed=None, reject=()):
    """`with fake_llm(respond, faults) as (base_url, server): ...` stops the server afterwards."""
    base_url, server = start(respond, faults, retry_after, slow_s, embed, reject)
    try:
        yield base_url, server
    finally:
        stop(server)
