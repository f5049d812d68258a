"""The OpenAI-compatible backend against a local fake server: real client, real HTTP, on loopback."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rewardsmith.judge.backends import Completion, Request, RequestFailure, load_backend


class _Server:
    def __init__(self, status=200, delay=0.05, logprobs=None):
        # logprobs: [(token, [(top token, logprob), ...]), ...] returned when a request asks for them
        self.status, self.delay, self.logprobs = status, delay, logprobs
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
                logprobs = None
                if body.get("logprobs") and outer.logprobs is not None:
                    text = "".join(t for t, _ in outer.logprobs)
                    logprobs = {"content": [
                        {"token": t, "logprob": top[0][1] if top else -1.0, "bytes": None,
                         "top_logprobs": [{"token": x, "logprob": lp, "bytes": None} for x, lp in top]}
                        for t, top in outer.logprobs]}
                payload = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                           "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
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


def test_choice_position_follows_the_verdict_marker():
    from rewardsmith.judge.backends.openai_compat import choice_probs

    tokens = [("Verdict", [("Verdict", -0.1)]), (":", [(":", -0.1)]), (" [[", [(" [[", -0.2)]),
              ("B", [("B", math.log(0.5)), (" A", math.log(0.2)), ("A", math.log(0.1)), ("The", -3.0)]),
              ("]]", [("]]", -0.01)])]
    probs = choice_probs(tokens, ("A", "B", "C"), "Verdict: [[")
    assert probs == pytest.approx({"A": 0.3, "B": 0.5})  # " A" and "A" add up; C is not in the top-k
    # a bare-letter reply is read at its first token; a reply cut off right after "[[" has no verdict
    assert choice_probs([("A", [("A", math.log(0.6)), ("B", math.log(0.3))])], ("A", "B", "C"), "Verdict: [[") == \
        pytest.approx({"A": 0.6, "B": 0.3})
    assert choice_probs(tokens[:3], ("A", "B", "C"), "Verdict: [[") == {}


def _verdict_pair():
    from rewardsmith.data.record import PreferencePair

    return PreferencePair(id="p", prompt=[{"role": "user", "content": "q"}], chosen="good", rejected="bad", language="en")


def test_logprob_mode_asks_for_top_logprobs_and_reads_them(server):
    from rewardsmith.judge import Client, judge_pairs, summarize

    s = server(delay=0, logprobs=[("[[", [("[[", -0.01)]),
                                  ("A", [("A", math.log(0.7)), ("B", math.log(0.2)), ("C", math.log(0.05))])])
    client = Client(load_backend(f"openai:tiny@{s.url}?mode=logprobs", concurrency=1))
    assert client.mode == "logprobs" and client.model_id == "openai:tiny"
    [v] = judge_pairs(client, [_verdict_pair()])
    assert s.bodies[0]["logprobs"] is True and s.bodies[0]["top_logprobs"] == 20
    assert v.probs["order_1"] == pytest.approx({"A": 0.7 / 0.95, "B": 0.2 / 0.95, "C": 0.05 / 0.95}, abs=1e-5)
    assert v.flipped and v.winner == "tie" and v.raw == ("[[A", "[[A")  # same answer in both orders

    # none of A/B/C among the top-k: a counted failure, not a default
    s2 = server(delay=0, logprobs=[("[[", [("[[", -0.01)]), ("The", [("The", -0.1), ("It", -2.0)])])
    [w] = judge_pairs(Client(load_backend(f"openai:tiny@{s2.url}?mode=logprobs", concurrency=1)), [_verdict_pair()])
    assert w.winner is None and summarize([w]).failure_reasons == {"no verdict token": 2}


def test_a_server_without_logprobs_fails_the_request_with_the_fix(server):
    s = server(delay=0)  # answers, but never with logprobs
    backend = load_backend(f"openai:tiny@{s.url}?mode=logprobs", concurrency=1, max_retries=0)
    request = Request.chat([{"role": "user", "content": "q"}], max_tokens=4, choices=("A", "B", "C"), prefix="[[")
    [(_, result)] = list(backend.complete([request]))
    assert isinstance(result, RequestFailure) and "mode=text" in result.reason
