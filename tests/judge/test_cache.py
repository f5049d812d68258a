"""The cache: content-keyed, consulted first, failures never stored, nothing asked twice."""

from __future__ import annotations

from rewardsmith.judge import Cache, Client
from rewardsmith.judge.backends import Completion, Request, RequestFailure, load_backend


def _requests(n, **params):
    return [Request.chat([{"role": "user", "content": f"q{i}"}], max_tokens=8, **params) for i in range(n)]


def test_second_run_is_served_from_disk(scripted, tmp_path):
    spec = scripted([], default="reply {seed}")
    first = Client(load_backend(spec), Cache(tmp_path / "c.sqlite"))
    out1 = first.run(_requests(3, seed=7))
    assert [c.text for c in out1] == ["reply 7"] * 3
    assert (first.counters.sent, first.counters.cached) == (3, 0)
    first.cache.close()

    again = Client(load_backend(spec), Cache(tmp_path / "c.sqlite"))  # a new process, in effect
    out2 = again.run(_requests(3, seed=7))
    assert out2 == out1
    assert (again.counters.sent, again.counters.cached) == (0, 3)


def test_key_depends_on_content_and_params_not_on_object_identity():
    a = Request.chat([{"role": "user", "content": "hi"}], max_tokens=8, seed=1)
    assert a.key("m") == Request.chat([{"role": "user", "content": "hi"}], max_tokens=8, seed=1).key("m")
    assert a.key("m") != Request.chat([{"role": "user", "content": "hi"}], max_tokens=8, seed=2).key("m")
    assert a.key("m") != Request.chat([{"role": "user", "content": "hi"}], max_tokens=9, seed=1).key("m")
    assert a.key("m") != a.key("other-model")


def test_duplicates_in_one_call_are_sent_once(scripted, tmp_path):
    client = Client(load_backend(scripted([], default="x")), Cache(tmp_path / "c.sqlite"))
    reqs = _requests(2) + _requests(2)
    out = client.run(reqs)
    assert len(out) == 4 and client.counters.sent == 2


def test_failures_are_counted_not_cached_and_retried_next_run(scripted, tmp_path):
    spec = scripted([{"contains": "q1", "fail": "timeout"}], default="ok")
    client = Client(load_backend(spec), Cache(tmp_path / "c.sqlite"))
    out = client.run(_requests(2))
    assert isinstance(out[0], Completion) and isinstance(out[1], RequestFailure)
    assert client.counters.failed == 1
    assert len(client.cache.keys()) == 1
    client.run(_requests(2))
    assert client.counters.sent == 3  # only the failed one went out again
