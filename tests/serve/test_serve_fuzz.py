"""The HTTP API fuzzed from its own OpenAPI schema, against the real server on loopback.

Property: whatever the request -- bodies the schema allows (positive), bodies it forbids
(negative), bytes that are not JSON at all -- the server answers below 500, its answers match
the schema it publishes (status codes, content types, response bodies), and every 4xx body names
the field: `{"detail", "errors": [{"field", "message"}]}` (401 names the header in `detail`).

Schemathesis makes the schema-driven cases (`operation.as_strategy(mode)` under plain Hypothesis;
its pytest loader `schemathesis.pytest.from_fixture` does not run under pytest 9.2: it sets the
node's `_nodeid`, which pytest 9 removed). Bounded and seeded here; the long profile:

    REWARDSMITH_FUZZ_EXAMPLES=2000 REWARDSMITH_FUZZ_SEED=1 pytest -q -s tests/serve/test_serve_fuzz.py

(examples per operation and mode; -s prints the status counts).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = int(os.environ.get("REWARDSMITH_FUZZ_EXAMPLES", "12"))
SEED = int(os.environ.get("REWARDSMITH_FUZZ_SEED", "27"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]
FUZZ = settings(max_examples=EXAMPLES, database=None, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", params=["decoder", "encoder"])
def server(request, serve):
    # Small limits, so generated lists and strings also cross them (413) and the model stays fast.
    return serve(request.getfixturevalue(f"{request.param}_rm_dir"), max_items=8, max_chars=2000, max_wait_ms=0)


# Top-level request fields of every endpoint: an error names one of them, an unknown field that
# was sent, or "body".
FIELDS = {"body", "items", "messages", "prompt", "response", "a", "b", "responses", "query", "prompts", "labels"}


def assert_names_the_field(response, sent: object) -> None:
    status = response.status_code
    if not 400 <= status < 500:
        return
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"], (status, response.text)
    if status == 401:
        return
    assert body.get("errors"), (status, response.text, sent)
    for error in body["errors"]:
        assert error["field"] and error["message"], (status, response.text, sent)
        top = _top(error["field"])
        assert top in FIELDS or (isinstance(sent, dict) and top in sent), (error, sent)


def _top(field: str) -> str:
    """The top-level key a field path starts with: 'items[0].response' -> 'items', '["a.b"]' -> 'a.b'."""
    if field.startswith('["'):
        return json.JSONDecoder().raw_decode(field[1:])[0]
    return re.split(r"[.\[]", field)[0]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schema_fuzz(server, mode):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    statuses: Counter = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        if mode.is_negative and operation.method.upper() == "GET":
            continue  # GET /health and /metrics take nothing that could be wrong

        @seed(SEED)
        @FUZZ
        @given(case=operation.as_strategy(mode))
        def check(case):
            response = case.call(timeout=60)
            statuses[(operation.label, response.status_code)] += 1
            case.validate_response(response, checks=CHECKS)
            assert_names_the_field(response, case.body)

        check()
    print(f"\n{mode.value}:", dict(sorted(statuses.items())))
    # The scorer was reached, not only the validators (positive), and forbidden bodies were refused.
    wanted = 200 if mode is GenerationMode.POSITIVE else 422
    assert all(statuses[(f"POST {p}", wanted)] for p in ("/score", "/compare", "/best-of-n", "/get_reward")), statuses


# Raw bodies below the schema: each endpoint's shape with texts that may hold lone surrogates
# (escaped by ensure_ascii, so valid JSON text), any JSON value, arbitrary bytes, and any of them
# under a wrong content type.
# Half the texts hold one lone surrogate (st.text never makes one, whatever its alphabet).
_text = st.text(max_size=12) | st.tuples(st.text(max_size=8), st.characters(categories=["Cs"]),
                                         st.text(max_size=4)).map("".join)
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | _text,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                     max_leaves=8)
_texts = st.lists(_text, min_size=1, max_size=3)
_shaped = st.one_of(
    st.tuples(st.just("/score"), st.fixed_dictionaries(
        {"items": st.lists(st.fixed_dictionaries({"prompt": _text, "response": _text}), min_size=1, max_size=2)})),
    st.tuples(st.just("/compare"), st.fixed_dictionaries({"prompt": _text, "a": _text, "b": _text})),
    st.tuples(st.just("/best-of-n"), st.fixed_dictionaries({"prompt": _text, "responses": _texts})),
    st.tuples(st.just("/get_reward"), st.fixed_dictionaries({"query": _texts})),
)
_path = st.sampled_from(["/score", "/compare", "/best-of-n", "/get_reward"])
_request = st.one_of(
    _shaped.map(lambda pb: (pb[0], json.dumps(pb[1], ensure_ascii=True).encode())),
    st.tuples(_path, _json.map(lambda v: json.dumps(v, ensure_ascii=True).encode())),
    st.tuples(_path, st.binary(max_size=64) | _text.map(lambda t: t.encode("utf-8", "surrogatepass"))),
)
_content_type = st.sampled_from(["application/json", "application/json", "application/json; charset=utf-8",
                                 "text/plain", "application/x-www-form-urlencoded", "application/vnd.api+json", ""])


def test_raw_bodies(server):
    statuses: Counter = Counter()
    with httpx.Client(base_url=server.url, timeout=60) as client:

        @seed(SEED)
        @settings(FUZZ, max_examples=EXAMPLES * 4)
        @given(request=_request, content_type=_content_type)
        def check(request, content_type):
            path, body = request
            headers = {"content-type": content_type} if content_type else {}
            response = client.post(path, content=body, headers=headers)
            statuses[response.status_code] += 1
            assert response.status_code < 500, (path, body, content_type, response.text)
            try:
                sent = json.loads(body)
            except ValueError:
                sent = None
            assert_names_the_field(response, sent)

        check()
    print("\nraw:", dict(sorted(statuses.items())))
