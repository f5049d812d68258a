"""Batching: seeded order, equal micro-batches, length grouping, held-out split by prompt, length drops."""

from collections import Counter

from rewardsmith.data.record import PreferencePair
from rewardsmith.train.data import EncodedPair, encode_pairs, make_batch, micro_batches, split_by_prompt


def _padding(batches, lengths):
    real = sum(lengths[i] for b in batches for i in b)
    computed = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - real / computed


def test_micro_batches_are_seeded_equal_and_cover_each_index_once():
    lengths = [(i * 37) % 300 + 5 for i in range(1003)]
    a = micro_batches(lengths, 8, seed=1, epoch=0)
    assert a == micro_batches(lengths, 8, seed=1, epoch=0)  # a resumed run rebuilds the same order
    assert a != micro_batches(lengths, 8, seed=1, epoch=1)  # a new epoch reshuffles
    assert all(len(b) == 8 for b in a) and len(a) == 1003 // 8
    flat = [i for b in a for i in b]
    assert len(set(flat)) == len(flat) == 1000


def test_length_grouping_cuts_padding():
    lengths = [(i * 7919) % 500 + 10 for i in range(2000)]
    grouped = micro_batches(lengths, 16, seed=0, epoch=0, group_by_length=True)
    plain = micro_batches(lengths, 16, seed=0, epoch=0, group_by_length=False)
    assert _padding(grouped, lengths) < 0.05 < 0.3 < _padding(plain, lengths)


def test_batch_layout_is_chosen_rows_then_rejected_rows():
    pairs = [EncodedPair([1, 2, 3], [4], 0.5, "en"), EncodedPair([5], [6, 7], 0.0, "ko")]
    batch = make_batch(pairs, pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [5, 0, 0], [4, 0, 0], [6, 7, 0]]
    assert batch["attention_mask"].sum().item() == batch["tokens"] == 7 and batch["padded"] == 12
    assert batch["margin"].tolist() == [0.5, 0.0]


def _pair(i, prompt, lang="en", chosen="yes", rejected="no"):
    return PreferencePair(id=str(i), prompt=[{"role": "user", "content": prompt}], chosen=chosen,
                          rejected=rejected, language=lang)


def test_held_out_split_keeps_every_prompt_on_one_side():
    pairs = [_pair(i, f"question {i % 40}") for i in range(400)]
    train, val = split_by_prompt(pairs, 0.25, seed=3)
    assert len(train) + len(val) == 400 and 0 < len(val) < 400
    assert not {p.prompt[0]["content"] for p in train} & {p.prompt[0]["content"] for p in val}


def test_over_length_pairs_are_dropped_and_counted_by_language(tiny_encoder_dir):
    from rewardsmith.models import init_reward_model

    rm = init_reward_model(tiny_encoder_dir, max_length=24)
    long = "more words " * 40
    pairs = [_pair(0, "short", "en"), _pair(1, long, "ko"), _pair(2, "short", "ja", chosen=long),
             _pair(3, "hi", "ja")]
    kept, report = encode_pairs(pairs, rm.tokenizer, rm.manifest, over_length="drop")
    assert [p.language for p in kept] == ["en", "ja"]
    assert report.dropped_for_length == Counter({"ko": 1, "ja": 1})
    assert all(len(p.chosen) <= 24 and len(p.rejected) <= 24 for p in kept)
    kept, report = encode_pairs(pairs, rm.tokenizer, rm.manifest, over_length="truncate")
    assert len(kept) == 4 and report.truncated["ko"] == 1 and report.truncated["en"] == 0
    assert report.response_truncated == Counter({"ja": 1})
    assert all(len(p.chosen) <= 24 for p in kept)


def test_balance_length_cuts_the_side_over_its_share_and_keeps_order():
    from functools import partial

    from rewardsmith.data import PreferencePair
    from rewardsmith.train.data import balance, chose_longer

    balance_length = partial(balance, side=chose_longer)

    def pair(i, chosen, rejected):
        return PreferencePair(id=str(i), prompt=[{"role": "user", "content": "q"}], chosen=chosen, rejected=rejected)

    # 75 pairs choose the longer answer, 25 the shorter, 5 are of equal length (always kept).
    pairs = ([pair(i, "long answer", "short") for i in range(75)] + [pair(100 + i, "s", "longer") for i in range(25)]
             + [pair(200 + i, "same", "four") for i in range(5)])
    kept = balance_length(pairs, share=0.5, seed=0)
    longer = sum(len(p.chosen) > len(p.rejected) for p in kept)
    assert longer == 25 and len(kept) == 25 + 25 + 5
    assert [p.id for p in kept] == [p.id for p in pairs if p in kept]  # original order
    assert balance_length(pairs, share=0.5, seed=0) == kept and balance_length(pairs, share=0.5, seed=1) != kept
    assert sum(len(p.chosen) > len(p.rejected) for p in balance_length(pairs, share=0.6, seed=0)) == round(25 * 0.6 / 0.4)
    # Asking for more longer-chosen pairs than there are cuts the shorter side instead.
    assert sum(len(p.chosen) < len(p.rejected) for p in balance_length(pairs, share=0.9, seed=0)) == round(75 / 9)


def test_chose_baseline_reads_the_arena_hard_label():
    from rewardsmith.data import PreferencePair
    from rewardsmith.train.data import chose_baseline

    def pair(info):
        return PreferencePair(id="x", prompt=[{"role": "user", "content": "q"}], chosen="a", rejected="b", label_info=info)

    base = {"baseline_model": "claude", "chosen_model": "claude", "rejected_model": "gpt"}
    assert chose_baseline(pair(base)) is True
    assert chose_baseline(pair({**base, "chosen_model": "gpt", "rejected_model": "claude"})) is False
    assert chose_baseline(pair({"chosen_model": "gpt"})) is None  # not judged against a baseline
    assert chose_baseline(pair({**base, "baseline_model": "o1"})) is None  # the baseline is on neither side


def test_margins_come_from_the_judges_strength_into_the_encoded_pairs(tmp_path, tiny_encoder_dir):
    import json

    import pytest

    from rewardsmith.errors import RewardsmithError
    from rewardsmith.models import init_reward_model
    from rewardsmith.train import load_config
    from rewardsmith.train.loop import load_data

    source = tmp_path / "judged.jsonl"
    rows = [{"id": str(i), "prompt": [{"role": "user", "content": f"q{i}"}], "chosen": "a", "rejected": "b",
             "language": "ko", "label_info": {"strength": strength}}
            for i, strength in enumerate(["strong", "slight", "strong", "tie-break"])]
    rows.append({"id": "given", "prompt": [{"role": "user", "content": "q9"}], "chosen": "a", "rejected": "b",
                 "language": "ko", "margin": 2.5})  # no strength: the pair keeps the margin its source gave
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    settings = {"model": "m", "output_dir": "o", "use_margin": True, "val_data": [str(source)],
                "train_data": [{"source": str(source), "margins": {"strong": 1, "slight": 0.33}}]}
    config = load_config(None, settings)
    assert config.train_data[0].margins == {"strong": 1.0, "slight": 0.33}
    rm = init_reward_model(tiny_encoder_dir, max_length=24)
    train, _, _, _ = load_data(config, rm.tokenizer, rm.manifest)
    assert [p.margin for p in train] == [1.0, 0.33, 1.0, 0.0, 2.5]
    # Keys that match no pair's strength would do nothing: an error that says what the source holds.
    wrong = {**settings, "train_data": [{"source": str(source), "margins": {"A>>B": 1}}]}
    with pytest.raises(RewardsmithError, match=r"judged.jsonl: margins lists strengths \['A>>B'\].*'strong' \(2\)"):
        load_data(load_config(None, wrong), rm.tokenizer, rm.manifest)
