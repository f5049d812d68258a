"""Verdict parsing, both-order combination, and the agreement/position-bias summary."""

from __future__ import annotations

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
    assert (s.pairs, s.agree, s.disagree, s.ties, s.flips, s.explicit_ties, s.failures) == (5, 1, 1, 2, 1, 1, 1)
    assert s.accuracy == pytest.approx((1 + 0.5 * 2) / 5)
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
