"""The scorer: batch-size independence, order, dedupe, compare / best-of-n, pairs."""

from __future__ import annotations

import math

import pytest
import torch

from rewardsmith.data.record import PreferencePair
from rewardsmith.errors import RewardsmithError
from rewardsmith.models import collate, encode, init_reward_model, reward_forward
from rewardsmith.score import Scorer, plan_batches, preference_probability

PROMPTS = ["How do I boil an egg?", "栄養バランスの良い食事とは何ですか？", "광화문에 어떻게 가나요?"]
RESPONSES = ["Nine minutes.", "主食、主菜、副菜をそろえることです。", "지하철 5호선 광화문역에서 내리세요.",
             "The quick brown fox jumps over the lazy dog. " * 3, "ありがとうございます。"]
ITEMS = [([{"role": "user", "content": p}], r) for p in PROMPTS for r in RESPONSES]


@pytest.fixture(scope="module", params=["encoder", "decoder"])
def rm(request, tiny_encoder_dir, tiny_decoder_dir):
    rm = init_reward_model(tiny_encoder_dir if request.param == "encoder" else tiny_decoder_dir, max_length=96)
    torch.manual_seed(1)
    head = rm.model.classifier if request.param == "encoder" else rm.model.score
    with torch.no_grad():  # spread the scores so order and pooling mistakes are visible
        head.weight.normal_(0, 1.0)
    return rm


def _single(rm, item):
    ids = encode(rm.tokenizer, rm.manifest, *item)
    with torch.inference_mode():
        return reward_forward(rm.model, **collate([ids], rm.pad_id)).item()


def test_plan_batches_respects_the_budget_and_sorts_by_length():
    lengths = [5, 100, 7, 98, 60, 61, 3]
    batches = plan_batches(lengths, 256)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= 256
        assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)
    assert plan_batches([500, 10], 256) == [[0], [1]]  # too long for the budget: a batch of its own


def test_plan_batches_cuts_where_padding_costs_more_than_a_pass():
    # Filling to the budget would pad all four to 300 (1200 tokens for 650 real).
    assert plan_batches([300, 200, 100, 50], 2048, batch_cost=32) == [[0], [1], [2], [3]]
    assert plan_batches([100, 99, 98, 97], 2048, batch_cost=32) == [[0, 1, 2, 3]]  # 6 padded < a pass
    assert len(plan_batches([100, 99, 98, 97], 2048, batch_cost=0)) == 4  # no pass cost: no padding at all


def test_plan_batches_is_the_cheapest_cut_of_the_sorted_lengths():
    import itertools
    import random

    rng = random.Random(0)
    for _ in range(200):
        lengths = [rng.randint(1, 120) for _ in range(rng.randint(1, 8))]
        budget, cost = rng.choice([64, 256, 1000]), rng.choice([0, 8, 32])
        sizes = sorted(lengths, reverse=True)

        def total(cuts):
            bounds = [0, *cuts, len(sizes)]
            parts = [sizes[a:b] for a, b in zip(bounds, bounds[1:])]
            if any(len(p) > 1 and len(p) * p[0] > budget for p in parts):
                return None
            return sum(len(p) * p[0] + cost for p in parts)

        feasible = [t for r in range(len(sizes)) for cuts in itertools.combinations(range(1, len(sizes)), r)
                    if (t := total(cuts)) is not None]
        batches = plan_batches(lengths, budget, batch_cost=cost)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        assert all(len(b) == 1 or len(b) * max(lengths[i] for i in b) <= budget for b in batches)
        assert sum(len(b) * max(lengths[i] for i in b) + cost for b in batches) == min(feasible)


def test_fp32_scores_do_not_depend_on_the_token_budget(rm):
    items = ITEMS + ITEMS[:4]  # duplicates too
    runs = [Scorer(rm, token_budget=b, precision="fp32").score(items) for b in (1, 100, 300, 100_000)]
    for other in runs[1:]:
        assert max(abs(a - b) for a, b in zip(runs[0], other)) < 1e-5
    singles = [_single(rm, item) for item in items]
    assert max(abs(a - b) for a, b in zip(runs[-1], singles)) < 1e-5  # order preserved
    assert len({round(s, 4) for s in singles}) > len(ITEMS) // 2  # inputs really differ


def test_identical_inputs_are_scored_once(rm, monkeypatch):
    import rewardsmith.score as score_module

    rows = []

    def counting_forward(model, input_ids, attention_mask, **kwargs):
        rows.append(input_ids.shape[0])
        return reward_forward(model, input_ids, attention_mask, **kwargs)

    monkeypatch.setattr(score_module, "reward_forward", counting_forward)
    # share_prefix off: every row then goes through reward_forward, where it is counted.
    scores = Scorer(rm, precision="fp32", share_prefix=False).score(ITEMS * 3)
    assert sum(rows) == len(ITEMS)
    assert scores[: len(ITEMS)] == scores[len(ITEMS): 2 * len(ITEMS)]


def test_bf16_autocast_stays_close_to_fp32(rm):
    fp32 = Scorer(rm, precision="fp32").score(ITEMS)
    bf16 = Scorer(rm, precision="bf16")
    assert bf16.dtype == torch.bfloat16
    scale = max(abs(r) for r in fp32)
    assert max(abs(a - b) for a, b in zip(fp32, bf16.score(ITEMS))) < 0.05 * scale


def test_compare_is_the_bradley_terry_probability(rm):
    scorer = Scorer(rm, precision="fp32")
    conv, a, b = ITEMS[0][0], RESPONSES[0], RESPONSES[3]
    r_a, r_b = scorer.score([(conv, a), (conv, b)])
    assert scorer.compare(conv, a, b) == pytest.approx(1 / (1 + math.exp(r_b - r_a)))
    assert scorer.compare(conv, a, b) + scorer.compare(conv, b, a) == pytest.approx(1.0)


def test_best_of_n_ranks_best_first(rm):
    scorer = Scorer(rm, precision="fp32")
    conv = ITEMS[0][0]
    ranked = scorer.best_of_n(conv, RESPONSES)
    rewards = scorer.score([(conv, r) for r in RESPONSES])
    assert sorted(i for i, _ in ranked) == list(range(len(RESPONSES)))
    assert [r for _, r in ranked] == sorted(rewards, reverse=True)
    assert all(rewards[i] == r for i, r in ranked)


def test_score_pairs_scores_each_side_with_its_own_conversation(rm):
    other = [{"role": "user", "content": PROMPTS[2]}]
    pairs = [
        PreferencePair(id="a", prompt=ITEMS[0][0], chosen=RESPONSES[0], rejected=RESPONSES[1]),
        PreferencePair(id="b", prompt=ITEMS[0][0], chosen=RESPONSES[2], rejected=RESPONSES[3], rejected_prompt=other),
    ]
    got = Scorer(rm, precision="fp32").score_pairs(pairs)
    expected = [(_single(rm, (ITEMS[0][0], RESPONSES[0])), _single(rm, (ITEMS[0][0], RESPONSES[1]))),
                (_single(rm, (ITEMS[0][0], RESPONSES[2])), _single(rm, (other, RESPONSES[3])))]
    assert [r for pair in got for r in pair] == pytest.approx([r for pair in expected for r in pair], abs=1e-4)


def test_bad_settings_are_user_errors(rm):
    with pytest.raises(RewardsmithError, match="precision='fp8'"):
        Scorer(rm, precision="fp8")
    with pytest.raises(RewardsmithError, match="token_budget=0"):
        Scorer(rm, token_budget=0)


def test_a_model_loaded_in_bf16_scores_natively(rm, tmp_path):
    from rewardsmith.models import load_reward_model, save_reward_model
    from rewardsmith.score import scoring_dtype

    fp32 = Scorer(rm, precision="fp32").score(ITEMS)
    loaded = load_reward_model(save_reward_model(rm, tmp_path / "rm"), dtype=scoring_dtype("bf16"))
    scorer = Scorer(loaded)
    assert scorer.dtype == torch.bfloat16 and not scorer._needs_autocast
    scale = max(abs(r) for r in fp32)
    assert max(abs(a - b) for a, b in zip(fp32, scorer.score(ITEMS))) < 0.05 * scale
    with pytest.raises(RewardsmithError, match="precision='fp32' but the model was loaded in torch.bfloat16"):
        Scorer(loaded, precision="fp32")


def test_compiled_forward_gives_the_eager_scores(tiny_decoder_dir):
    rm = init_reward_model(tiny_decoder_dir, max_length=96)
    eager = Scorer(rm, precision="fp32").score(ITEMS)
    compiled = Scorer(rm, precision="fp32", compile=True)
    assert max(abs(a - b) for a, b in zip(eager, compiled.score(ITEMS))) < 1e-5
    compiled.token_budget = 1  # one row per batch: padded to two rows, still the same scores
    assert max(abs(a - b) for a, b in zip(eager, compiled.score(ITEMS[:3]))) < 1e-5


def test_compare_does_not_overflow_on_far_apart_rewards(rm, monkeypatch):
    scorer = Scorer(rm, precision="fp32")
    conv = ITEMS[0][0]
    monkeypatch.setattr(scorer, "score", lambda items: [-1000.0, 1000.0])
    assert scorer.compare(conv, "a", "b") == 0.0
    monkeypatch.setattr(scorer, "score", lambda items: [1000.0, -1000.0])
    assert scorer.compare(conv, "a", "b") == 1.0


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_without_native_bf16_is_warned_about(native, monkeypatch, caplog):
    """bf16 asked for explicitly still gives bf16, but where the CPU emulates it (AVX2 only:
    ~5-25x slower than fp32) the user is told; "auto" silently picks fp32 there."""
    import rewardsmith.models.precision
    from rewardsmith.score import scoring_dtype
    from rewardsmith.train.loop import _mixed_precision

    monkeypatch.setattr(rewardsmith.models.precision, "cpu_has_bf16", lambda: native)
    with caplog.at_level("WARNING", logger="rewardsmith.models.precision"):
        assert scoring_dtype("bf16") is torch.bfloat16
        assert scoring_dtype("auto") is (torch.bfloat16 if native else torch.float32)
        if not torch.cuda.is_available():
            assert _mixed_precision("bf16") == "bf16"
            assert _mixed_precision("auto") == ("bf16" if native else "no")
    warnings = [r for r in caplog.records if "emulates bf16" in r.getMessage()]
    assert len(warnings) == (0 if native else (1 if torch.cuda.is_available() else 2))


def test_preference_probability_is_safe_for_large_differences():
    # The library, the CLI's compare and the server's /compare all use it: rewards 1000 apart
    # must give 1 and 0, not an OverflowError from exp(1000).
    assert preference_probability(1000.0, 0.0) == 1.0 and preference_probability(0.0, 1000.0) == 0.0
    assert preference_probability(0.8, 0.5) == pytest.approx(1 / (1 + math.exp(-0.3)))
