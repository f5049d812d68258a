"""Filters (each reports what it drops), the token budget, and mojibake detection."""

from __future__ import annotations

import pytest

from rewardsmith.data import DropReport, PreferencePair, filters
from rewardsmith.data.mojibake import mojibake_codec
from rewardsmith.errors import RewardsmithError


class WordTokenizer:
    """One token per whitespace-separated word: token counts a test can compute by eye."""

    def encode(self, text, add_special_tokens=False):
        return text.split()

    def decode(self, ids):
        return " ".join(ids)


def pair(i, prompt=("q",), chosen="c", rejected="r", **kw):
    msgs = [{"role": "user" if k % 2 == 0 else "assistant", "content": t} for k, t in enumerate(prompt)]
    return PreferencePair(id=f"p{i}", prompt=msgs, chosen=chosen, rejected=rejected, **kw)


def test_single_turn_ties_duplicates_and_equal_responses():
    pairs = [pair(0), pair(1, prompt=("q", "a", "q2")), pair(2, label_info={"tie": True}), pair(3),
             pair(4, chosen="same", rejected=" same ")]
    report = DropReport()
    out = filters.dedupe(filters.drop_ties(filters.single_turn(pairs, report), report), report)
    out = filters.distinct_responses(out, report)
    assert [p.id for p in out] == ["p0"]
    assert report.dropped == {"not single-turn": 1, "tie": 1, "duplicate": 1, "chosen == rejected": 1}
    assert report.examples["duplicate"] == ["p3"]


def test_language_turn_and_subset_filters():
    pairs = [pair(0, language="ja", subset="better", label_info={"turn": 1}),
             pair(1, language="ko", subset="safer", label_info={"turn": 2})]
    report = DropReport()
    assert [p.id for p in filters.language_is("japanese")(pairs, report)] == ["p0"]
    assert [p.id for p in filters.turn_is(2)(pairs, report)] == ["p1"]
    assert [p.id for p in filters.subset_is("safer")(pairs, report)] == ["p1"]
    assert report.dropped == {"language != ja": 1, "turn != 2": 1, "subset not in ['safer']": 1}


def test_token_budget_drop_counts_the_longer_side():
    tok = WordTokenizer()
    fits = pair(0, prompt=("one two",), chosen="a b c", rejected="a")  # 2 + 3 = 5 tokens
    over = pair(1, prompt=("one two",), chosen="a", rejected="a b c d")  # 2 + 4 = 6 tokens
    report = DropReport()
    assert [p.id for p in filters.token_budget(tok, 5, "drop")([fits, over], report)] == ["p0"]
    assert report.dropped == {"over max_length 5 tokens": 1}


def test_token_budget_truncate_left_keeps_the_latest_turns():
    tok = WordTokenizer()
    long = pair(0, prompt=("w1 w2 w3 w4", "x1 x2", "y1 y2 y3"), chosen="c1 c2", rejected="r1")
    report = DropReport()
    (p,) = filters.token_budget(tok, 7, "truncate_left")([long], report)
    # room for the prompt: 7 - 2 = 5 tokens -> "y1 y2 y3" (3) + "x1 x2" (2); the first turn goes
    assert [m["content"] for m in p.prompt] == ["x1 x2", "y1 y2 y3"]
    assert p.prompt[-1]["role"] == "user" and p.chosen == "c1 c2"
    (q,) = filters.token_budget(tok, 6, "truncate_left")([long], DropReport())
    assert [m["content"] for m in q.prompt] == ["x2", "y1 y2 y3"]  # the earliest kept turn cut from the left
    none = filters.token_budget(tok, 2, "truncate_left")([long], report)
    assert none == [] and report.dropped == {"responses alone over max_length 2 tokens": 1}


def test_token_budget_with_a_real_tokenizer(tiny_encoder_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    short, long = pair(0, chosen="yes"), pair(1, chosen="word " * 300)
    out = filters.token_budget(tok, 64, "drop")([short, long], DropReport())
    assert [p.id for p in out] == ["p0"]


def test_bad_settings_raise():
    with pytest.raises(RewardsmithError, match="policy"):
        filters.token_budget(WordTokenizer(), 10, "truncate_right")
    with pytest.raises(RewardsmithError, match="positive"):
        filters.token_budget(WordTokenizer(), 0)


@pytest.mark.parametrize("codec", ["cp1253", "cp1252", "latin-1"])
def test_mojibake_of_each_codec_is_caught(codec):
    text = "챗봇의 장점은 무엇인가요? 日本語の文章です。"
    damaged = text.encode("utf-8").decode(codec, errors="replace")
    assert damaged != text and mojibake_codec(damaged) is not None


def test_the_cards_mojibake_and_clean_text():
    assert mojibake_codec("μ±—λ΄‡μ˜") is not None  # the Korean card's `챗봇의`
    assert mojibake_codec("cafÃ© au lait") == "cp1252"
    for clean in ("챗봇의 장점", "日本語のテキスト…", "Ελληνικά κείμενα", "naïve café résumé",
                  "It’s “quoted” — fine", "¿Qué tal? ¡Bien!", "bytes lost: ��"):
        assert mojibake_codec(clean) is None, clean
