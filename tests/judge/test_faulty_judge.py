"""A judge server that misbehaves in every way it can, by turns: 500s, timeouts, empty bodies,
bodies that are not JSON, JSON cut short, bytes that are not UTF-8, a verdict in another
language or in full-width letters. Every request ends as a verdict or a counted failure within
its bounded retries, and the rerun after the faults stop sends exactly the requests that failed
(the cache holds the rest): counted by the requests the server receives.

The server is an OpenAI-compatible stdlib http.server on loopback; the client is the real
`openai:` backend, one request at a time so the turns fall on known requests.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rewardsmith.data.record import PreferencePair
from rewardsmith.judge.backends import load_backend
from rewardsmith.judge.cache import Cache, Client
from rewardsmith.judge.core import judge_pairs

TIMEOUT = 0.3  # the client's; a "timeout" turn answers after twice that
# One turn per HTTP request received. With one retry per request, the 9 turns fall as: request 1
# gets 500 then a timeout (fails), request 2 an empty body then HTML (fails), request 3 cut-short
# JSON then invalid UTF-8 (fails), requests 4-6 get an answer (a Korean reply with no verdict, a
# full-width verdict, a plain one). So 3 of every 6 requests fail.
TURNS = ["500", "timeout", "empty", "not-json", "truncated", "bad-utf8", "other-language", "full-width", "ok"]


def _completion(text: str) -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "judge",
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": text}}],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}).encode()


class FaultyJudge:
    """Prefers the answer that says "good"; while `faulty`, the n-th request gets turns[n % len]."""

    def __init__(self, turns=TURNS):
        self.faulty = True
        self.received = 0
        outer, lock = self, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    turn = turns[outer.received % len(turns)] if outer.faulty else "ok"
                    outer.received += 1
                verdict = "A" if "Answer A: good" in body["messages"][-1]["content"] else "B"
                status, ctype, data = 200, "application/json", _completion(f"[[{verdict}]]")
                if turn == "500":
                    status, data = 500, b'{"error": {"message": "internal error"}}'
                elif turn == "timeout":
                    time.sleep(2 * TIMEOUT)
                elif turn == "empty":
                    data = b""
                elif turn == "not-json":
                    ctype, data = "text/html", b"<html><body>502 Bad Gateway</body></html>"
                elif turn == "truncated":
                    data = data[: len(data) // 2]
                elif turn == "bad-utf8":
                    data = data.replace(b"[[", b"\xff\xfe[[")
                elif turn == "other-language":
                    data = _completion("답변 A가 더 낫습니다.")  # no [[X]]: a counted parse failure
                elif turn == "full-width":
                    data = _completion(f"判定：［［{chr(ord(verdict) + 0xFEE0)}］］")  # ［［Ａ］］ is [[A]]
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # a timed-out client has gone
                    pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def judge_server():
    server = FaultyJudge()
    yield server
    server.http.shutdown()


@pytest.mark.parametrize("turn,reason", [
    ("500", "InternalServerError"), ("timeout", "APITimeoutError"), ("empty", "unreadable reply (JSONDecodeError"),
    ("not-json", "not a chat completion: '<html>"), ("truncated", "unreadable reply (JSONDecodeError"),
    ("bad-utf8", "unreadable reply (UnicodeDecodeError"),
])
def test_each_fault_alone_is_a_request_failure_naming_it(turn, reason):
    # These crashed the whole run with a traceback before: empty, not-json, truncated, bad-utf8.
    from rewardsmith.judge.backends import Request, RequestFailure

    server = FaultyJudge([turn])
    backend = load_backend(f"openai:judge@{server.url}", timeout=TIMEOUT, max_retries=0)
    [(_, result)] = list(backend.complete([Request.chat([{"role": "user", "content": "Which?"}], max_tokens=8)]))
    server.http.shutdown()
    assert isinstance(result, RequestFailure) and reason in result.reason, result
    assert server.received == 1  # max_retries=0: one attempt


def test_every_request_ends_as_a_verdict_or_a_counted_failure_and_the_rerun_sends_only_the_failed(
        judge_server, tmp_path, monkeypatch):
    monkeypatch.setattr("rewardsmith.judge.backends.openai_compat.RETRY_DELAY", 0.05)  # the back-off, shortened
    pairs = [PreferencePair(id=f"p{i}", prompt=[{"role": "user", "content": f"Question {i}?"}],
                            chosen=f"good answer {i}", rejected=f"poor answer {i}", language="en")
             for i in range(6)]  # 12 requests: two rounds of the turns
    backend = load_backend(f"openai:judge@{judge_server.url}", concurrency=1, timeout=TIMEOUT, max_retries=1)
    cache = tmp_path / "cache.sqlite"

    client = Client(backend, Cache(cache))
    verdicts = judge_pairs(client, pairs)
    assert len(verdicts) == 6 and client.counters.sent == 12
    assert client.counters.failed == 6  # requests 1-3 of each 6: failed after one retry each
    assert judge_server.received == 18  # 12 requests + one retry for each of the 6 that failed: bounded
    failed_requests = sum(f.count("request failed") for v in verdicts if (f := v.failure))
    assert failed_requests == 6
    reasons = " ".join(v.failure for v in verdicts if v.failure)  # a failure keeps its last attempt's reason
    for kind in ("APITimeoutError", "not a chat completion", "UnicodeDecodeError", "no verdict"):
        assert kind in reasons, (kind, reasons)
    assert all(v.winner is not None or v.failure for v in verdicts)  # nothing defaulted

    judge_server.faulty, judge_server.received = False, 0  # the faults stop
    client = Client(backend, Cache(cache))
    verdicts = judge_pairs(client, pairs)
    assert judge_server.received == 6 and client.counters.sent == 6 and client.counters.cached == 6
    assert client.counters.failed == 0
    # Decided now, except the pairs with the Korean reply: it was an answer (cached), not a failure.
    assert sum(v.winner == "response_1" for v in verdicts) == 4
    assert all(v.failure and "no verdict" in v.failure and "request failed" not in v.failure
               for v in verdicts if v.winner is None)
