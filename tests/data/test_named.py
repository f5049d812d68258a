"""Named formats on fixtures in their published shape (tests/fixtures/data), and the card presets."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from rewardsmith.data import load_pairs
from rewardsmith.data.presets import PRESETS, get_preset
from rewardsmith.errors import RewardsmithError

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def test_helpsteer3_ja_preset_reproduces_the_card_filter():
    """12 rows: 7 Japanese single-turn (2 ties), 2 Japanese multi-turn, 3 other languages -> 5 pairs."""
    r = load_pairs(FIX / "helpsteer3", preset="helpsteer3-ja")
    assert len(r.pairs) == 5
    assert r.report.dropped == {"language != ja": 3, "not single-turn": 2, "tie": 2}
    assert r.report.kept_by("subset") == {"train": 3, "validation": 2}
    by_prompt = {p.prompt[0]["content"]: p for p in r.pairs}
    fuji = by_prompt["富士山の高さは？"]  # overall_preference +2: response2 is better
    assert fuji.chosen == "富士山の標高は3776メートルです。" and fuji.margin == 2.0
    tokyo = by_prompt["日本の首都はどこですか？"]  # -3: response1 is better
    assert tokyo.chosen == "日本の首都は東京です。" and tokyo.margin == 3.0
    assert tokyo.label_info["overall_preference"] == -3 and tokyo.language == "ja"


def test_helpsteer3_without_preset_keeps_ties_marked():
    r = load_pairs(FIX / "helpsteer3")
    assert len(r.pairs) == 12 and not r.report.dropped
    assert sum(p.label_info["tie"] for p in r.pairs) == 2
    assert {p.language for p in r.pairs} == {"ja", "ko", "python", "en"}


def test_llm_jp_arena_preset_turn_1_clear_winner():
    """10 rows (parquet): turn 1 with model_a/model_b 5, turn-1 ties 2, turn 2 3 -> 5 pairs."""
    r = load_pairs(FIX / "llm-jp-arena", preset="llm-jp-arena")
    assert len(r.pairs) == 5
    assert r.report.dropped == {"turn != 1": 3, "tie": 2}
    for p in r.pairs:
        assert p.source == "llm-jp-arena" and p.language == "ja"
        winner = p.label_info["winner"]
        assert p.chosen.startswith("モデルA" if winner == "model_a" else "モデルB")
        assert p.label_info["chosen_model"] == p.label_info[winner]


def test_arena_multi_turn_keeps_each_models_conversation():
    r = load_pairs(FIX / "llm-jp-arena")
    p = next(p for p in r.pairs if p.id == "arena-008")  # turn 2, model_b wins
    assert p.chosen == "モデルBの回答8-2" and p.rejected == "モデルAの回答8-2"
    assert p.prompt[1]["content"] == "モデルBの回答8-1" and p.rejected_prompt[1]["content"] == "モデルAの回答8-1"


def test_mt_bench_turn_says_which_answer_was_judged():
    pairs = load_pairs(FIX / "mt-bench-human").pairs
    assert [(p.chosen, p.rejected, len(p.prompt)) for p in pairs] == [
        ("A-answer 81.1", "B-answer 81.1", 1),  # turn 1: first answers only
        ("B-answer 81.2", "A-answer 81.2", 3),  # turn 2, model_b
        ("A-answer 82.1", "B-answer 82.1", 1),  # tie, kept and marked
    ]
    assert [p.label_info["tie"] for p in pairs] == [False, False, True]


def test_hh_rlhf_ko_context_and_helpful_preset():
    r = load_pairs(FIX / "hh-rlhf-ko")
    p = r.pairs[1]
    assert p.prompt == [{"role": "user", "content": "안녕"}, {"role": "assistant", "content": "안녕하세요! 무엇을 도와드릴까요?"},
                        {"role": "user", "content": "서울 여행지 추천해줘"}]
    assert p.subset == "helpful-online" and p.language == "ko"
    helpful = load_pairs(FIX / "hh-rlhf-ko", preset="hh-rlhf-ko-helpful")
    assert len(helpful.pairs) == 2 and helpful.report.n_dropped == 1


def test_pku_saferlhf_better_and_safer_subsets():
    r = load_pairs(FIX / "pku-saferlhf-ko")
    assert r.report.kept_by("subset") == {"better": 3, "safer": 3}
    better = load_pairs(FIX / "pku-saferlhf-ko", preset="pku-saferlhf-ko-better").pairs
    assert len(better) == 3
    third = better[2]  # better_response_id 1, safer_response_id 0: the two variants disagree
    assert third.chosen.startswith("상사의 차를")
    safer = [p for p in r.pairs if p.subset == "safer"][2]
    assert safer.chosen == "대화로 해결해 보세요."
    en = load_pairs(FIX / "pku-saferlhf").pairs
    assert [(p.subset, p.chosen) for p in en] == [("better", "Insert a tension wrench..."),
                                                   ("safer", "I can't help with that.")]


def test_ultrafeedback_binarized_h4_messages_and_ko_strings():
    h4 = load_pairs(FIX / "ultrafeedback-binarized").pairs
    assert h4[0].prompt == [{"role": "user", "content": "Name a prime number."}]
    assert (h4[0].chosen, h4[0].rejected) == ("7 is a prime number.", "9")
    assert h4[0].label_info == {"prompt_id": "p1", "score_chosen": 9.0, "score_rejected": 2.0}
    ko = load_pairs(FIX / "ko-ultrafeedback-binarized", preset="ko-ultrafeedback-binarized")
    assert len(ko.pairs) == 2 and all(p.language == "ko" for p in ko.pairs)
    assert ko.report.dropped == {"mojibake": 1}  # the card's own `μ±—λ΄‡μ˜` damage
    assert "train.jsonl" not in ko.report.examples["mojibake"][0]  # example names the pair id
    assert "ko-ultrafeedback-binarized/train/2" in ko.report.examples["mojibake"][0]


def test_hh_rlhf_transcripts(tmp_path):
    t = lambda *turns: "".join(f"\n\n{r}: {c}" for r, c in turns)  # noqa: E731
    rows = [
        {"chosen": t(("Human", "hi"), ("Assistant", "hello")), "rejected": t(("Human", "hi"), ("Assistant", "go away"))},
        # the earlier assistant turn differs: both conversations kept
        {"chosen": t(("Human", "q"), ("Assistant", "a1"), ("Human", "q2"), ("Assistant", "good")),
         "rejected": t(("Human", "q"), ("Assistant", "b1"), ("Human", "q2"), ("Assistant", "bad"))},
        # a model wrote a fake Human turn into its answer: it stays in the answer
        {"chosen": t(("Human", "q"), ("Assistant", "fine")),
         "rejected": t(("Human", "q"), ("Assistant", "sure"), ("Human", "made up"))},
        # two Assistant turns in a row are one answer
        {"chosen": t(("Human", "q"), ("Assistant", "one"), ("Assistant", "two")), "rejected": t(("Human", "q"), ("Assistant", "x"))},
        {"chosen": "no markers at all", "rejected": "nothing"},
    ]
    f = tmp_path / "harmless-base.test.jsonl.gz"
    f.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    r = load_pairs(f)
    p0, p1, p2, p3 = r.pairs
    assert r.report.files == {str(f): "hh-rlhf"}
    assert (p0.prompt, p0.chosen, p0.rejected, p0.subset, p0.language) == (
        [{"role": "user", "content": "hi"}], "hello", "go away", "harmless-base", "en")
    assert p1.rejected_prompt[1]["content"] == "b1" and p1.prompt[1]["content"] == "a1"
    assert p2.rejected == "sure\n\nHuman: made up" and p2.rejected_prompt is None
    assert p3.chosen == "one\n\nAssistant: two"
    assert r.report.dropped == {"not an hh-rlhf transcript": 1}
    assert r.report.flagged["conversations differ before the last turn (scored as whole transcripts)"] == 1


def test_preset_errors_and_listing():
    with pytest.raises(RewardsmithError, match="did you mean helpsteer3-ja"):
        get_preset("helpsteer-ja")
    with pytest.raises(RewardsmithError, match="no Hugging Face copy"):
        load_pairs(preset="square")
    assert {"helpsteer3-ja", "llm-jp-arena", "hh-rlhf-ko-helpful", "pku-saferlhf-ko-better",
            "ko-ultrafeedback-binarized", "hh-rlhf", "square", "kudge"} <= set(PRESETS)
    for p in PRESETS.values():
        assert p.hub_id or p.files  # every preset can be read from somewhere


def test_hub_id_goes_through_datasets(monkeypatch):
    """A hub id takes the same path as a saved folder: `datasets.load_dataset(id, config)`."""
    import datasets

    seen = {}

    def fake_load_dataset(name, config=None):
        seen["args"] = (name, config)
        ds = datasets.Dataset.from_list([{
            "domain": "multilingual", "language": "japanese", "context": [{"role": "user", "content": "q"}],
            "response1": "a", "response2": "b", "overall_preference": 1, "individual_preference": []}])
        return datasets.DatasetDict({"train": ds, "validation": ds, "test": ds})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    r = load_pairs(preset="helpsteer3-ja")
    assert seen["args"] == ("nvidia/HelpSteer3", "preference")
    assert r.report.kept_by("subset") == {"train": 1, "validation": 1}  # the card's splits only
    assert r.pairs[0].chosen == "b"


def test_hh_rlhf_anthropic_layout_and_preset_pick_the_test_files(tmp_path):
    row = {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: no"}
    for sub in ("harmless-base", "helpful-base"):
        for split, n in (("train", 3), ("test", 2)):
            (tmp_path / sub).mkdir(exist_ok=True)
            (tmp_path / sub / f"{split}.jsonl.gz").write_bytes(gzip.compress((json.dumps(row) + "\n").encode() * n))
    r = load_pairs(tmp_path, preset="hh-rlhf")
    assert r.report.kept_by("subset") == {"harmless-base": 2, "helpful-base": 2}


def test_ko_deepl_lines_recovered_whatever_comes_first(tmp_path):
    """Three damaged lines in the shape of ko_harmless_base_test.txt (the first one valid JSON)."""
    lines = [
        json.dumps({"chosen": "\n\nHuman: 안녕?\n\nAssistant: 안녕하세요.", "거부됨": "\n\nHuman: 안녕?\n\nAssistant: 꺼져."},
                   ensure_ascii=False),
        # stray quote at a turn end, translated role marker with an invalid escape, translated key
        r'{"chosen": "\n\nHuman: 펜으로 할 장난은?"\n\nAssistant: 아이디어를 찾나요?"\n\nHuman: 네\n\어시스턴트: 낙서하세요.", '
        r'"거부": "\n\nHuman: 펜으로 할 장난은? \n\nAssistant: 아이디어를 찾나요? \n\nHuman: 네\n\n조수: 몰라요."}',
        # the chosen answer lost by the translation: counted, not guessed
        r'{"chosen": "\n\nHuman: 독은 뭐가 좋아요?", "거부됨": "\n\nHuman: 독은 뭐가 좋나요?"\n\nAssistant: 안 알려줘요."}',
    ]
    f = tmp_path / "ko_harmless_base_test.txt"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = load_pairs(f)
    assert r.report.files == {str(f): "ko-hh-rlhf-deepl"}
    assert [(p.chosen, p.rejected) for p in r.pairs] == [("안녕하세요.", "꺼져."), ("낙서하세요.", "몰라요.")]
    p = r.pairs[1]
    assert [m["role"] for m in p.prompt] == ["user", "assistant", "user"]
    assert p.prompt[0]["content"] == "펜으로 할 장난은?" and p.label_info["rejected_key"] == "거부"
    assert r.report.dropped == {"answer lost in translation": 1}
