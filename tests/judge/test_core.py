"""Verdict parsing, both-order combination, and the agreement/position-bias summary."""

from __future__ import annotations

import hashlib
import json

import pytest

from rewardsmith.data.record import PreferencePair
from rewardsmith.errors import RewardsmithError
from rewardsmith.judge import RESPONSE_1, RESPONSE_2, TIE, ParseFailure, judge_pairs, make_client, parse_verdict, summarize
from rewardsmith.judge import prompts


@pytest.mark.parametrize("text, expected", [
    ("[[A]]", "A"),
    ("[[B]] because it answers the question", "B"),
    ("[[C]]", TIE),
    ("Verdict: [[ b ]]\nReason: shorter", "B"),
    ("B", "B"),
    ("**A**\nIt is correct.", "A"),
    ("Verdict: C", TIE),
    ("[[A]] is better. Final: [[A]]", "A"),
    ("A: it answers the question", "A"),
    ("C) Both are similar", TIE),
])
def test_parse_verdict_reads_verdicts(text, expected):
    assert parse_verdict(text) == expected


@pytest.mark.parametrize("text, reason", [
    ("[[A]], [[B]] or [[C]]", "ambiguous"),   # the instructions parroted back
    ("Answer A is better", "no verdict"),
    ("A good answer would mention Paris.", "no verdict"),
    ("Both answers are fine.", "no verdict"),
    ("   \n", "empty"),
])
def test_parse_verdict_fails_instead_of_guessing(text, reason):
    result = parse_verdict(text)
    assert isinstance(result, ParseFailure) and result.reason.startswith(reason)


def test_prompts_exist_for_every_language_and_format():
    for lang in ("ja", "ko", "en"):
        user = prompts.PAIRWISE[lang].format(question="Q", answer_a="AAA", answer_b="BBB")
        assert user.index("Q") < user.index("AAA") < user.index("BBB") < user.index("[[A]]")
        assert "[[B]]" in user and "[[C]]" in user
        assert "{examples}" in prompts.NEW_INSTRUCTION[lang]


def _pair(i, chosen, rejected, language="en"):
    return PreferencePair(id=f"p{i}", prompt=[{"role": "user", "content": f"question {i}"}], chosen=chosen,
                          rejected=rejected, language=language, source="test")


def test_both_orders_agree_flip_tie_and_fail(scripted):
    rules = [
        # p0: the judge prefers "good" wherever it stands -> agrees with the human
        {"contains": "Answer A: good0", "reply": "[[A]]"}, {"contains": "Answer B: good0", "reply": "[[B]]"},
        # p1: always answers A -> the verdict flips with the order -> tie
        {"contains": "question 1", "reply": "[[A]]"},
        # p2: explicit tie in both orders
        {"contains": "question 2", "reply": "[[C]] same"},
        # p3: prefers the rejected answer consistently
        {"contains": "Answer A: bad3", "reply": "[[A]]"}, {"contains": "Answer B: bad3", "reply": "[[B]]"},
        # p4: one order is unparseable, the other a request failure
        {"contains": "Answer A: good4", "reply": "no idea"}, {"contains": "Answer A: bad4", "fail": "HTTP 500"},
    ]
    client = make_client(scripted(rules, default=None))
    pairs = [_pair(0, "good0", "bad0"), _pair(1, "good1", "bad1"), _pair(2, "good2", "bad2"),
             _pair(3, "good3", "bad3"), _pair(4, "good4", "bad4")]
    v = {x.pair_id: x for x in judge_pairs(client, pairs)}
    assert v["p0"].winner == RESPONSE_1 and v["p0"].orders == (RESPONSE_1, RESPONSE_1) and not v["p0"].flipped
    assert v["p1"].winner == TIE and v["p1"].flipped and v["p1"].orders == (RESPONSE_1, RESPONSE_2)
    assert v["p2"].winner == TIE and not v["p2"].flipped
    assert v["p3"].winner == RESPONSE_2
    assert v["p4"].winner is None and "no verdict" in v["p4"].failure and "HTTP 500" in v["p4"].failure
    assert v["p4"].raw == ("no idea", None)
    assert v["p0"].raw == ("[[A]]", "[[B]]")

    s = summarize(list(v.values()))
    assert (s.pairs, s.agree, s.disagree, s.ties, s.flips, s.explicit_ties, s.flip_ties, s.failures) == \
        (5, 1, 1, 2, 1, 1, 1, 1)
    # The evaluation table's convention: a tie is not a win, a failure is not a win.
    assert s.accuracy == pytest.approx(1 / 5)
    assert s.ci_low <= s.accuracy <= s.ci_high
    assert s.mode == "text" and s.first_position_prob is None
    assert s.decided_accuracy == pytest.approx(0.5)
    assert s.flip_rate == pytest.approx(1 / 4)
    # decided replies: p0 A,B; p1 A,A; p3 B,A -> 4 of 6 chose position A
    assert s.first_position_rate == pytest.approx(4 / 6)
    assert client.counters.failed == 1 and client.counters.sent == 10


def test_language_selects_the_prompt(scripted):
    # Only the Korean prompt's labels match, so a verdict proves the Korean prompt was sent.
    client = make_client(scripted([{"contains": "답변 A: 좋은", "reply": "[[A]]"},
                                   {"contains": "답변 B: 좋은", "reply": "[[B]]"}], default=None))
    [v] = judge_pairs(client, [_pair(0, "좋은 답변", "나쁜 답변", language="ko")])
    assert v.winner == RESPONSE_1 and v.language == "ko"


def test_unknown_backend_is_a_clean_error():
    with pytest.raises(RewardsmithError, match="KIND:MODEL"):
        make_client("vllm:foo")
    with pytest.raises(RewardsmithError, match="does not exist"):
        make_client("scripted:/nonexistent/script.json")


def test_accuracy_is_the_evaluation_tables_number(scripted):
    """Same outcomes through `summarize` and through evaluate's metrics -> the same cell."""
    from rewardsmith import metrics

    rules = [{"contains": "Answer A: good", "reply": "[[A]]"}, {"contains": "Answer B: good", "reply": "[[B]]"},
             {"contains": "question 2", "reply": "[[C]]"}, {"contains": "question 3", "reply": "???"}]
    client = make_client(scripted(rules, default="[[A]]"))
    pairs = [_pair(0, "good0", "bad0"), _pair(1, "good1", "bad1"), _pair(2, "x2", "y2"), _pair(3, "x3", "y3"),
             _pair(4, "bad4", "good4")]
    verdicts = judge_pairs(client, pairs)
    s = summarize(verdicts)
    cell, _ = metrics.accuracy([metrics.WIN, metrics.WIN, metrics.TIE, metrics.LOSS, metrics.LOSS])
    assert (s.accuracy, s.ci_low, s.ci_high) == (cell.accuracy, cell.low, cell.high)
    assert (s.agree, s.disagree, s.ties, s.failures) == (2, 1, 1, 1)
    # Told which pairs share a prompt, the interval resamples whole prompts, as evaluate's does.
    prompts = {"p0": "q", "p1": "q", "p2": "r", "p3": "r", "p4": "s"}
    by_prompt = summarize(verdicts, prompts=prompts)
    cell, _ = metrics.accuracy([metrics.WIN, metrics.WIN, metrics.TIE, metrics.LOSS, metrics.LOSS],
                               clusters=["q", "q", "r", "r", "s"])
    assert (by_prompt.accuracy, by_prompt.ci_low, by_prompt.ci_high) == (cell.accuracy, cell.low, cell.high)


def _probs_rules(table: dict[str, dict[str, float]]) -> list[dict]:
    """Logprob rules: the shown answer A (by its text) -> the judge's next-token probabilities."""
    return [{"contains": f"Answer A: {text}", "probs": probs} for text, probs in table.items()]


def test_logprob_verdicts_average_both_orders_and_record_flips(scripted):
    rules = _probs_rules({
        # p0: leans to A in both orders (a flip), but likes good0 more where it stands -> good0 wins
        "good0": {"A": 0.5, "B": 0.1, "C": 0.4}, "bad0": {"A": 0.45, "B": 0.15, "C": 0.4},
        # p1: the tie token outweighs both picks in both orders -> an explicit tie
        "good1": {"A": 0.2, "B": 0.1, "C": 0.7}, "bad1": {"A": 0.1, "B": 0.2, "C": 0.7},
        # p2: consistent preference for the rejected answer; C missing from the top-k counts as 0
        "good2": {"A": 0.2, "B": 0.6}, "bad2": {"A": 0.7, "B": 0.3},
        # p3: order 1 has none of A/B/C among its tokens -> a counted failure, not a guess
        "good3": {}, "bad3": {"A": 0.9, "B": 0.1, "C": 0.0},
    })
    client = make_client(scripted(rules, default=None) + "?mode=logprobs")
    assert client.mode == "logprobs" and "?" not in client.model_id
    pairs = [_pair(i, f"good{i}", f"bad{i}") for i in range(4)]
    v = {x.pair_id: x for x in judge_pairs(client, pairs)}

    assert v["p0"].winner == RESPONSE_1 and v["p0"].flipped and v["p0"].orders == (RESPONSE_1, RESPONSE_2)
    combined = v["p0"].probs["combined"]
    assert combined[RESPONSE_1] == pytest.approx((0.5 + 0.15) / 2) and combined[TIE] == pytest.approx(0.4)
    assert sum(v["p0"].probs["order_1"].values()) == pytest.approx(1.0)
    assert v["p1"].winner == TIE and not v["p1"].flipped
    assert v["p2"].winner == RESPONSE_2 and v["p2"].probs["order_1"] == {"A": 0.25, "B": 0.75, "C": 0.0}
    assert v["p3"].winner is None and "no verdict token" in v["p3"].failure and v["p3"].probs["order_1"] is None

    s = summarize(list(v.values()))
    assert (s.mode, s.agree, s.disagree, s.ties, s.explicit_ties, s.flip_ties, s.flips, s.failures) == \
        ("logprobs", 1, 1, 1, 1, 0, 1, 1)
    assert s.flip_rate == pytest.approx(1 / 3) and s.failure_reasons == {"no verdict token": 1}
    assert s.accuracy == pytest.approx(1 / 4)
    # order picks: p0 A, A; p2 B, A; p3's readable order 2: A  -> 4 of 5 chose the first position
    assert s.first_position_rate == pytest.approx(4 / 5)


def test_logprob_and_text_requests_have_distinct_keys_and_text_keys_are_unchanged():
    from rewardsmith.judge.core import judge_requests

    text = judge_requests([{"role": "user", "content": "q"}], "a", "b", "en", 16, "text")
    logp = judge_requests([{"role": "user", "content": "q"}], "a", "b", "en", 16, "logprobs")
    assert text[0].messages == logp[0].messages and logp[0].choices == ("A", "B", "C")
    assert logp[0].prefix == prompts.VERDICT_PREFIX["en"] and text[0].key("m") != logp[0].key("m")
    # a text request's key is built as before logprob requests existed, so old caches stay valid
    r = text[0]
    old = {"model": "m", "messages": r.messages, "max_tokens": r.max_tokens, "temperature": r.temperature,
           "top_p": r.top_p, "seed": r.seed}
    assert r.key("m") == hashlib.sha256(json.dumps(old, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("spec, message", [
    ("local:x?mode=fast", "judge mode 'fast' unknown"),
    ("local:x?temperature=1", "setting 'temperature=1' unknown"),
])
def test_spec_settings_are_checked(spec, message):
    with pytest.raises(RewardsmithError, match=message):
        make_client(spec)
