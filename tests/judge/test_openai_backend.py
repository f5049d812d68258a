"""The OpenAI-compatible backend against a local fake server: real client, real HTTP, on loopback."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rewardsmith.judge.backends import Completion, Request, RequestFailure, load_backend


class _Server:
    def __init__(self, status=200, delay=0.05):
        self.status, self.delay = status, delay
        self.hits = 0
        self.active = self.max_active = 0
        self.bodies = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    outer.hits += 1
                    outer.active += 1
                    outer.max_active = max(outer.max_active, outer.active)
                    outer.bodies.append(body)
                time.sleep(outer.delay)
                with lock:
                    outer.active -= 1
                if outer.status != 200:
                    self.send_response(outer.status)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "boom"}}')
                    return
                text = "echo: " + body["messages"][-1]["content"]
                payload = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": text}}],
                           "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    servers = []

    def make(**kw):
        servers.append(_Server(**kw))
        return servers[-1]

    yield make
    for s in servers:
        s.httpd.shutdown()


def _requests(n):
    return [Request.chat([{"role": "user", "content": f"q{i}"}], max_tokens=4, seed=i) for i in range(n)]


def test_answers_every_request_with_bounded_concurrency(server):
    s = server()
    backend = load_backend(f"openai:tiny@{s.url}", concurrency=2)
    results = dict(backend.complete(_requests(6)))
    assert sorted(results) == list(range(6))
    assert all(isinstance(r, Completion) for r in results.values())
    assert results[3].text == "echo: q3" and results[3].completion_tokens == 2
    assert s.max_active <= 2 and s.hits == 6
    assert s.bodies[0]["max_tokens"] == 4 and "seed" in s.bodies[0]


def test_server_errors_become_counted_failures_after_limited_retries(server):
    s = server(status=500, delay=0)
    backend = load_backend(f"openai:tiny@{s.url}", concurrency=1, max_retries=1)
    [(i, result)] = list(backend.complete(_requests(1)))
    assert isinstance(result, RequestFailure) and "500" in result.reason
    assert s.hits == 2  # one try + one retry, then it stops


def test_timeout_is_a_failure_not_a_hang(server):
    s = server(delay=1.5)
    backend = load_backend(f"openai:tiny@{s.url}", concurrency=1, timeout=0.2, max_retries=0)
    [(_, result)] = list(backend.complete(_requests(1)))
    assert isinstance(result, RequestFailure) and "Timeout" in result.reason
