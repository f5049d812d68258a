"""The real server on loopback: every endpoint, the library's exact scores, bad input, limits, auth,
and many concurrent clients getting their own results."""

from __future__ import annotations

import asyncio
import json
import sys

import httpx
import pytest

CONV_EN = [{"role": "user", "content": "How do I boil an egg?"}]
CONV_JA = [{"role": "system", "content": "丁寧に答えてください。"},
           {"role": "user", "content": "栄養バランスの良い食事とは何ですか？"}]
CONV_KO = [{"role": "user", "content": "광화문에 어떻게 가나요?"},
           {"role": "assistant", "content": "지하철을 타세요."},
           {"role": "user", "content": "몇 호선이요?"}]
ITEMS = [(CONV_EN, "Put it in boiling water for nine minutes."), (CONV_JA, "主食、主菜、副菜をそろえることです。"),
         (CONV_KO, "5호선 광화문역에서 내리세요."), (CONV_EN, "Eggs are oval.")]


# The server's forward passes mix requests, so a row's batch-mates (and padding) differ from the
# offline Scorer's: rewards agree to float32 noise (~1e-8 here), far inside this tolerance.
SAME = 1e-6


def as_json(conversation, response):
    return {"messages": conversation, "response": response}


@pytest.fixture(scope="module")
def decoder(serve, decoder_rm_dir):
    return serve(decoder_rm_dir, max_wait_ms=50)


@pytest.fixture(scope="module")
def encoder(serve, encoder_rm_dir):
    return serve(encoder_rm_dir)


@pytest.fixture(scope="module")
def library():
    """Scorer per served model, built from the same loaded RewardModel (fp32, like the servers)."""
    from rewardsmith.score import Scorer

    cache = {}

    def get(server):
        if server.url not in cache:
            cache[server.url] = Scorer(server.rm, precision="fp32")
        return cache[server.url]

    return get


@pytest.mark.parametrize("which", ["decoder", "encoder"])
def test_score_returns_the_library_scores(which, request, library):
    server = request.getfixturevalue(which)
    r = httpx.post(f"{server.url}/score", json={"items": [as_json(c, t) for c, t in ITEMS]})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = library(server).score(ITEMS)  # one request = one scorer call with the same items
    assert body["rewards"] == pytest.approx(expected, abs=SAME)
    manifest = server.rm.manifest
    assert body["calibrated"] == pytest.approx([(x - manifest.score_mean) / manifest.score_std for x in expected])
    assert len(set(body["rewards"])) == len(ITEMS)  # a random head still tells different inputs apart


def test_prompt_is_one_user_turn(decoder, library):
    r = httpx.post(f"{decoder.url}/score", json={"items": [{"prompt": CONV_EN[0]["content"], "response": "Nine."}]})
    assert r.json()["rewards"] == pytest.approx(library(decoder).score([(CONV_EN, "Nine.")]), abs=SAME)


def test_over_long_prompt_is_truncated_by_the_manifest_policy(decoder, library):
    long_prompt = [{"role": "user", "content": "日本語の文章も正しく扱えるようにします。" * 400}]
    assert len(decoder.rm.tokenizer(long_prompt[0]["content"])["input_ids"]) > decoder.rm.manifest.max_length
    r = httpx.post(f"{decoder.url}/score", json={"items": [as_json(long_prompt, "はい。")]})
    assert r.status_code == 200, r.text
    assert r.json()["rewards"] == pytest.approx(library(decoder).score([(long_prompt, "はい。")]), abs=SAME)


@pytest.mark.parametrize("which", ["decoder", "encoder"])
def test_compare_and_best_of_n_match_the_library(which, request, library):
    server = request.getfixturevalue(which)
    scorer = library(server)
    r = httpx.post(f"{server.url}/compare", json={"messages": CONV_KO, "a": "5호선입니다.", "b": "몰라요."})
    assert r.status_code == 200, r.text
    assert r.json()["p_a_better"] == pytest.approx(scorer.compare(CONV_KO, "5호선입니다.", "몰라요."), abs=SAME)
    assert r.json()["rewards"] == pytest.approx(scorer.score([(CONV_KO, "5호선입니다."), (CONV_KO, "몰라요.")]), abs=SAME)

    responses = ["서울입니다.", "부산입니다.", "모르겠어요.", "서울특별시가 한국의 수도입니다."]
    r = httpx.post(f"{server.url}/best-of-n", json={"prompt": "한국의 수도는?", "responses": responses})
    assert r.status_code == 200, r.text
    ranked = scorer.best_of_n([{"role": "user", "content": "한국의 수도는?"}], responses)
    assert [x["index"] for x in r.json()["ranking"]] == [i for i, _ in ranked]
    assert [x["reward"] for x in r.json()["ranking"]] == pytest.approx([x for _, x in ranked], abs=SAME)
    assert r.json()["best"] == ranked[0][0]


def test_get_reward_openrlhf_protocol_decoder(decoder, library):
    """A query rendered with the model's chat template scores exactly like /score on its messages."""
    from rewardsmith.models import render

    tok, manifest = decoder.rm.tokenizer, decoder.rm.manifest
    queries, prompts = [], []
    for conv, response in ITEMS:
        text = render(tok, manifest, conv, response)["text"]
        queries.append(text)
        prompts.append(text[: text.rindex(response)])
    expected = library(decoder).score(ITEMS)
    # OpenRLHF >= 0.5 sends prompts and labels; older versions only the query.
    for body in ({"query": queries, "prompts": prompts, "labels": [""] * len(queries)}, {"query": queries}):
        r = httpx.post(f"{decoder.url}/get_reward", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["rewards"] == pytest.approx(expected, abs=SAME)
        assert r.json()["scores"] == r.json()["rewards"]
    # Generated text often ends in eos instead of the template's closer, and pads ride along.
    eos, pad = tok.eos_token, tok.pad_token
    q = queries[0]
    cut = q[: q.rindex(ITEMS[0][1]) + len(ITEMS[0][1])]
    r = httpx.post(f"{decoder.url}/get_reward", json={"query": [pad + cut + eos + pad * 3]})
    assert r.json()["rewards"] == pytest.approx(expected[:1], abs=SAME)


def test_get_reward_plain_text_fallback_is_counted(decoder, library):
    r = httpx.post(f"{decoder.url}/get_reward", json={"query": ["Human: hi\n\nAssistant: hello"],
                                                       "prompts": ["Human: hi\n\nAssistant:"]})
    assert r.status_code == 200, r.text
    assert r.json()["rewards"] == pytest.approx(
        library(decoder).score([([{"role": "user", "content": "Human: hi\n\nAssistant:"}], " hello")]), abs=SAME)
    metrics = httpx.get(f"{decoder.url}/metrics").text
    assert "rewardsmith_get_reward_unparsed_total 1.0" in metrics


def test_get_reward_encoder_needs_prompts(encoder, library):
    r = httpx.post(f"{encoder.url}/get_reward", json={"query": ["한국의 수도는?서울입니다."],
                                                       "prompts": ["한국의 수도는?"]})
    assert r.status_code == 200, r.text
    assert r.json()["rewards"] == pytest.approx(
        library(encoder).score([([{"role": "user", "content": "한국의 수도는?"}], "서울입니다.")]), abs=SAME)
    r = httpx.post(f"{encoder.url}/get_reward", json={"query": ["한국의 수도는? 서울입니다."]})
    assert r.status_code == 422
    assert "query[0]" in r.json()["detail"] and "prompts" in r.json()["detail"]
    assert r.json()["errors"][0]["field"] == "query[0]"  # in the error list too (found by the fuzzer)


BAD_INPUT = [
    ({"items": []}, 422, "items"),
    ({}, 422, "items: field required"),
    ({"items": [{"prompt": "x", "response": ""}]}, 422, "items[0].response"),
    ({"items": [{"prompt": "x", "response": "   "}]}, 422, "items[0].response"),
    ({"items": [{"prompt": "x", "response": "y", "respones": "z"}]}, 422, "items[0].respones: unknown field"),
    ({"items": [{"prompt": "x", "response": "y"}], "model": "gpt"}, 422, "model: unknown field"),
    ({"items": [{"prompt": 3, "response": "y"}]}, 422, "items[0].prompt"),
    ({"items": [{"prompt": "x", "response": ["y"]}]}, 422, "items[0].response"),
    ({"items": "x"}, 422, "items"),
    ({"items": [{"response": "y"}]}, 422, "items[0]: give exactly one of `messages`"),
    ({"items": [{"prompt": "x", "messages": [{"role": "user", "content": "x"}], "response": "y"}]}, 422, "items[0]"),
    ({"items": [{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "a"}],
                 "response": "y"}]}, 422, "must end with a user turn"),
    ({"items": [{"messages": [{"role": "robot", "content": "x"}], "response": "y"}]}, 422, "items[0].messages[0].role"),
    ({"items": [{"messages": [{"role": "user"}], "response": "y"}]}, 422, "items[0].messages[0].content: field required"),
    ({"items": [{"messages": [], "response": "y"}]}, 422, "items[0].messages"),
    # Found by the long fuzz profile: an unknown key that looks like a path is quoted, not read as one.
    ({"items": [{"prompt": "x", "response": "y"}], "items[0]": 1}, 422, '["items[0]"]: unknown field'),
    ({"items": [{"prompt": "x", "response": "y", ".": 1}]}, 422, 'items[0]["."]: unknown field'),
]


@pytest.mark.parametrize("body,status,field", BAD_INPUT)
def test_bad_input_gets_a_4xx_naming_the_field(decoder, body, status, field):
    r = httpx.post(f"{decoder.url}/score", json=body)
    assert r.status_code == status, r.text
    assert field in r.json()["detail"], r.json()
    assert r.json()["errors"] and all("field" in e and "message" in e for e in r.json()["errors"])


@pytest.mark.parametrize("path,body,field", [
    ("/compare", {"prompt": "x", "a": "y"}, "b: field required"),
    ("/compare", {"prompt": "x", "a": "y", "b": " "}, "b:"),
    ("/best-of-n", {"prompt": "x", "responses": []}, "responses"),
    ("/best-of-n", {"prompt": "x", "responses": ["ok", ""]}, "response 1"),
    ("/get_reward", {"query": "just a string"}, "query"),
    ("/get_reward", {"query": ["a", "b"], "prompts": ["a"]}, "`prompts` has 1 entries"),
    ("/get_reward", {"query": ["a"], "templates": "x"}, "templates: unknown field"),
])
def test_bad_input_on_every_endpoint(decoder, path, body, field):
    r = httpx.post(decoder.url + path, json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"]


def test_malformed_json_and_missing_content_type(decoder):
    r = httpx.post(f"{decoder.url}/score", content=b'{"items": [', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "malformed JSON" in r.json()["detail"]
    r = httpx.post(f"{decoder.url}/score", content=b'{"items": []}', headers={"content-type": "text/plain"})
    assert r.status_code == 422 and "Content-Type: application/json" in r.json()["detail"]
    # Still serving after all that.
    assert httpx.post(f"{decoder.url}/score", json={"items": [as_json(*ITEMS[0])]}).status_code == 200


@pytest.mark.parametrize("path,body,field", [
    ("/score", '{"items": [{"prompt": "x", "response": "a\\udfffb"}]}', "items[0].response"),
    ("/compare", '{"prompt": "x", "a": "\\ud83d", "b": "y"}', "a"),
    ("/best-of-n", '{"prompt": "x", "responses": ["ok", "\\ud800"]}', "responses[1]"),
    ("/get_reward", '{"query": ["\\ud800"]}', "query[0]"),
])
def test_unpaired_surrogate_is_a_422_naming_the_field(decoder, path, body, field):
    # Found by the fuzzer: JSON may escape half a UTF-16 pair; the tokenizer raised a TypeError (500).
    r = httpx.post(decoder.url + path, content=body.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field and "unpaired UTF-16 surrogate" in r.json()["detail"]


def test_body_that_is_not_text_is_a_400_naming_the_body(decoder):
    # Found by the fuzzer: FastAPI answered "There was an error parsing the body", naming nothing.
    for raw in (b'{"items": [{"prompt": "x", "response": "\xff"}]}', b"\x00" * 29):
        r = httpx.post(f"{decoder.url}/score", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.json()["errors"][0]["field"] == "body" and "UTF-8" in r.json()["detail"]


def test_limits(serve, decoder_rm_dir):
    server = serve(decoder_rm_dir, max_items=3, max_chars=100, max_body_bytes=2000)
    item = {"prompt": "x", "response": "y"}
    r = httpx.post(f"{server.url}/score", json={"items": [item] * 4})
    assert r.status_code == 413 and "items: 4 items; the limit is 3" in r.json()["detail"]
    r = httpx.post(f"{server.url}/best-of-n", json={"prompt": "x", "responses": ["a"] * 4})
    assert r.status_code == 413 and "responses" in r.json()["detail"]
    r = httpx.post(f"{server.url}/score", json={"items": [item, {"prompt": "x" * 60, "response": "y" * 60}]})
    assert r.status_code == 413 and "items[1]: 120 characters; the limit is 100" in r.json()["detail"]
    r = httpx.post(f"{server.url}/score", json={"items": [{"prompt": "x" * 3000, "response": "y"}]})
    assert r.status_code == 413 and "larger than 2000 bytes" in r.json()["detail"]

    def chunked():  # no Content-Length: the limit must hold while the body streams in
        yield b'{"items": [{"prompt": "'
        for _ in range(30):
            yield b"x" * 100
        yield b'", "response": "y"}]}'

    r = httpx.post(f"{server.url}/score", content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "larger than 2000 bytes" in r.json()["detail"]
    assert httpx.post(f"{server.url}/score", json={"items": [item] * 3}).status_code == 200


def test_request_time_limit(serve, decoder_rm_dir):
    server = serve(decoder_rm_dir, request_timeout=1e-6)
    r = httpx.post(f"{server.url}/score", json={"items": [as_json(*ITEMS[0])]})
    assert r.status_code == 503 and "--request-timeout" in r.json()["detail"]
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"


def test_api_key(serve, decoder_rm_dir):
    server = serve(decoder_rm_dir, api_key="s3cret")
    body = {"items": [as_json(*ITEMS[0])]}
    assert httpx.post(f"{server.url}/score", json=body).status_code == 401
    r = httpx.post(f"{server.url}/score", json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert httpx.post(f"{server.url}/get_reward", json={"query": ["x"]}).status_code == 401
    assert httpx.post(f"{server.url}/score", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert httpx.get(f"{server.url}/health").status_code == 200  # probes need no secret


def test_health_metrics_and_docs(decoder):
    h = httpx.get(f"{decoder.url}/health").json()
    assert h["status"] == "ok" and h["input_format"] == "chat_template" and h["calibrated"] is True
    assert h["max_length"] == decoder.rm.manifest.max_length
    spec = httpx.get(f"{decoder.url}/openapi.json").json()
    assert {"/score", "/compare", "/best-of-n", "/get_reward", "/health", "/metrics"} <= set(spec["paths"])
    assert spec["paths"]["/score"]["post"]["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"}  # the error shape the server really sends
    # Prometheus text, documented as such (the fuzzer found it documented as JSON).
    assert list(spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    assert httpx.get(f"{decoder.url}/docs").status_code == 200
    # One scoring request of its own, so the counters checked below exist whatever ran before.
    assert httpx.post(f"{decoder.url}/score", json={"items": [as_json(*ITEMS[0])]}, timeout=120).status_code == 200
    metrics = httpx.get(f"{decoder.url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'rewardsmith_requests_total{endpoint="/score",status="200"}' in metrics.text
    assert "rewardsmith_batch_items_bucket" in metrics.text
    if sys.platform == "linux":  # the process's memory, to watch the heap's growth under load
        assert _count(metrics.text, "process_resident_memory_bytes") > 50e6


def _count(metrics: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(name + " "))


def test_many_concurrent_clients_get_their_own_results(decoder, library):
    """64 clients at once: each gets the scores of its own items, in its own order, and
    requests shared forward passes (max_wait_ms=50 for this server)."""
    items = [([{"role": "user", "content": f"質問 {i}: 광화문 {i % 7}"}], f"answer {i} " + "はい" * (i % 5))
             for i in range(128)]
    requests = [items[i:i + 2] for i in range(0, 128, 2)]  # 64 requests of 2 items
    expected = library(decoder).score(items)
    before = httpx.get(f"{decoder.url}/metrics").text

    async def run():
        async with httpx.AsyncClient(base_url=decoder.url, limits=httpx.Limits(max_connections=64), timeout=60) as c:
            return await asyncio.gather(*[
                c.post("/score", json={"items": [as_json(*x) for x in req]}) for req in requests])

    responses = asyncio.run(run())
    assert all(r.status_code == 200 for r in responses)
    got = [x for r in responses for x in r.json()["rewards"]]
    assert got == pytest.approx(expected, abs=SAME)
    after = httpx.get(f"{decoder.url}/metrics").text
    passes = _count(after, "rewardsmith_batch_requests_count") - _count(before, "rewardsmith_batch_requests_count")
    shared = _count(after, "rewardsmith_batch_requests_sum") - _count(before, "rewardsmith_batch_requests_sum")
    assert shared >= 64 and passes < 64, (passes, shared)  # forward passes held several requests


def test_compiled_server_compiles_at_startup_and_scores_like_the_library(serve, decoder_rm_dir, library):
    server = serve(decoder_rm_dir, compile=True)  # returns once the port is open: compiled by then
    assert server.app.state.scorer.compiled
    r = httpx.post(f"{server.url}/score", json={"items": [as_json(c, t) for c, t in ITEMS]}, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["rewards"] == pytest.approx(library(server).score(ITEMS), abs=SAME)


def test_a_flood_beyond_max_pending_gets_503_with_retry_after(serve, decoder_rm_dir, library):
    # The idle worker waits 1.5 s for company, so all 10 requests arrive while the first is queued:
    # two of 4 items fill --max-pending 8, the other eight are refused at once, not queued.
    server = serve(decoder_rm_dir, max_items=4, max_pending=8, max_wait_ms=1500)
    body = {"items": [as_json(*x) for x in ITEMS]}

    async def flood():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
            return await asyncio.gather(*[c.post("/score", json=body) for _ in range(10)])

    responses = asyncio.run(flood())
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 2 + [503] * 8, statuses
    for r in responses:
        if r.status_code == 503:
            assert int(r.headers["retry-after"]) >= 1 and "--max-pending" in r.json()["detail"]
        else:
            assert r.json()["rewards"] == pytest.approx(library(server).score(ITEMS), abs=SAME)
    assert httpx.get(f"{server.url}/health").json()["queue_items"] == 0
    assert httpx.post(f"{server.url}/score", json=body, timeout=60).status_code == 200  # served again


def test_a_client_that_disconnects_does_not_poison_its_batch(serve, decoder_rm_dir, library):
    import socket
    from urllib.parse import urlsplit

    server = serve(decoder_rm_dir, max_wait_ms=1500)  # both requests land in the same forward pass
    url = urlsplit(server.url)
    payload = json.dumps({"items": [as_json(*ITEMS[1])]}).encode()

    async def run():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
            gone = socket.create_connection((url.hostname, url.port))
            gone.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
            stays = asyncio.ensure_future(c.post("/score", json={"items": [as_json(*x) for x in ITEMS]}))
            await asyncio.sleep(0.5)  # both are waiting in the batcher now
            gone.close()
            return await stays

    r = asyncio.run(run())
    assert r.status_code == 200, r.text
    assert r.json()["rewards"] == pytest.approx(library(server).score(ITEMS), abs=SAME)
    assert httpx.get(f"{server.url}/health").json()["queue_items"] == 0
