"""Golden tests for the evaluation math: ties, bootstrap intervals, calibration, ranks, length bias."""

import math

import numpy as np
import pytest

from rewardsmith import metrics


def test_outcomes_and_tie_is_not_a_win():
    o = metrics.outcomes_from_scores([2.0, 1.0, 0.5, 3.0], [1.0, 1.0, 0.7, -1.0])
    assert o.tolist() == [1.0, 0.5, 0.0, 1.0]
    cell, _ = metrics.accuracy(o, n_boot=200, seed=0)
    # 2 wins out of 4: the tie counts in n but not as a win (0.5 would be "half a win").
    assert cell.accuracy == 0.5 and cell.n == 4 and cell.wins == 2 and cell.ties == 1


def test_all_ties_is_zero_accuracy_not_chance():
    cell, _ = metrics.accuracy([0.5] * 10, n_boot=200, seed=0)
    assert cell.accuracy == 0.0 and cell.ties == 10 and cell.high == 0.0


def test_bootstrap_ci_on_known_vector():
    # 700 wins in 1000: percentile interval ≈ p ± 1.96·sqrt(p(1−p)/n) = 0.7 ± 0.0284.
    o = np.r_[np.ones(700), np.zeros(300)]
    cell, boots = metrics.accuracy(o, n_boot=4000, seed=123)
    half = 1.96 * math.sqrt(0.7 * 0.3 / 1000)
    assert cell.accuracy == pytest.approx(0.7)
    assert cell.low == pytest.approx(0.7 - half, abs=0.004)
    assert cell.high == pytest.approx(0.7 + half, abs=0.004)
    assert boots.shape == (4000,)
    assert boots.std() == pytest.approx(math.sqrt(0.21 / 1000), rel=0.06)


def test_bootstrap_is_seeded_and_matches_a_naive_loop():
    v = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 1], dtype=float)
    a = metrics.bootstrap_means(v, n_boot=50, seed=7)
    b = metrics.bootstrap_means(v, n_boot=50, seed=7)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, metrics.bootstrap_means(v, n_boot=50, seed=8))
    rng = np.random.default_rng(7)
    naive = rng.integers(0, v.size, size=(50, v.size))  # one chunk here: the same draws in the same order
    assert np.allclose(a, v[naive].mean(axis=1))


def test_clusters_of_one_pair_each_draw_exactly_as_the_pair_bootstrap():
    v = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 1], dtype=float)
    keys = [f"prompt {i}" for i in (9, 3, 7, 0, 1, 2, 8, 6, 5, 4)]  # any keys, any order
    assert np.array_equal(metrics.bootstrap_means(v, clusters=keys, n_boot=50, seed=7),
                          metrics.bootstrap_means(v, n_boot=50, seed=7))


def test_pairs_of_one_prompt_are_resampled_together():
    # 20 prompts x 10 pairs; a prompt's pairs all win (14 prompts) or all lose (6). Resampled pair by
    # pair this looks like 200 independent trials (0.7 ± 0.064); it is 20 (0.7 ± 0.20).
    outcomes = np.repeat(np.r_[np.ones(14), np.zeros(6)], 10)
    prompts = np.repeat([f"q{i}" for i in range(20)], 10)
    pairwise, _ = metrics.accuracy(outcomes, n_boot=4000, seed=1)
    cell, boots = metrics.accuracy(outcomes, clusters=prompts, n_boot=4000, seed=1)
    assert cell.accuracy == pytest.approx(0.7) and cell.n == 200 and cell.prompts == 20 and pairwise.prompts is None
    half = 1.96 * math.sqrt(0.21 / 20)
    assert cell.low == pytest.approx(0.7 - half, abs=0.04) and cell.high == pytest.approx(0.7 + half, abs=0.04)
    assert pairwise.high - pairwise.low < 0.4 * (cell.high - cell.low)
    assert boots.std() == pytest.approx(math.sqrt(0.21 / 20), rel=0.08)


def test_cluster_replicate_is_the_pair_mean_of_the_drawn_prompts():
    # Unequal prompt sizes: a replicate is wins / pairs over the drawn prompts (a big prompt weighs
    # more), not the mean of per-prompt accuracies. Checked against a naive loop with the same draws.
    v = np.array([1, 1, 1, 0, 0, 1, 0], dtype=float)
    keys = ["a", "a", "a", "b", "c", "c", "d"]  # first appearance: a=0, b=1, c=2, d=3
    got = metrics.bootstrap_means(v, clusters=keys, n_boot=30, seed=3)
    sums, counts = np.array([3.0, 0.0, 1.0, 0.0]), np.array([3.0, 1.0, 2.0, 1.0])
    draws = np.random.default_rng(3).integers(0, 4, size=(30, 4))
    assert np.allclose(got, sums[draws].sum(axis=1) / counts[draws].sum(axis=1))
    with pytest.raises(ValueError, match="3 cluster keys for 7 values"):
        metrics.bootstrap_means(v, clusters=keys[:3])


def test_versus_length_resamples_prompts_when_told():
    # The model beats "longer wins" by 0.05 on 400 pairs, all of it on 2 of 40 prompts: paired pair
    # by pair that is beyond noise; resampled by prompt it is not ((38/40)^40 = 13% of the draws
    # miss both prompts).
    model = np.ones(400)
    longer = np.r_[np.zeros(20), np.ones(380)]  # the rule is wrong on the first 20 pairs only
    lc, lr = np.where(longer == 1, 10.0, 1.0), np.where(longer == 1, 1.0, 10.0)
    prompts = np.repeat(np.arange(40), 10)
    assert metrics.versus_length(model, lc, lr, n_boot=2000)["beats"]
    vs = metrics.versus_length(model, lc, lr, clusters=prompts, n_boot=2000)
    assert vs["difference"] == pytest.approx(0.05) and vs["baseline"] == "longer wins"
    assert vs["ci95"][0] == 0.0 and not vs["beats"]


def test_constant_vector_has_degenerate_interval():
    cell, _ = metrics.accuracy(np.ones(37), n_boot=300, seed=0)
    assert (cell.accuracy, cell.low, cell.high) == (1.0, 1.0, 1.0)


def test_ece_hand_case():
    # Margins chosen so σ gives confidences 0.9 (4 pairs, 3 correct) and 0.6 (2 pairs, 1 correct),
    # plus one exact tie (left out). With 5 bins over [0.5, 1]: bin (0.5,0.6] and (0.8,0.9].
    logit = lambda p: math.log(p / (1 - p))
    m = [logit(0.9)] * 3 + [-logit(0.9)] + [logit(0.6), -logit(0.6)] + [0.0]
    cal = metrics.calibration(m, n_bins=5)
    assert cal.n == 6 and cal.ties == 1
    assert cal.counts == [2, 0, 0, 4, 0]
    assert cal.accuracy[0] == pytest.approx(0.5) and cal.accuracy[3] == pytest.approx(0.75)
    assert cal.confidence[0] == pytest.approx(0.6) and cal.confidence[3] == pytest.approx(0.9)
    # ECE = 2/6·|0.5−0.6| + 4/6·|0.75−0.9| = 0.0333… + 0.1 = 0.1333…
    assert cal.ece == pytest.approx(2 / 6 * 0.1 + 4 / 6 * 0.15)


def test_perfectly_calibrated_margins_have_small_ece():
    rng = np.random.default_rng(0)
    m = rng.normal(0, 2, size=20000)
    # The model's pick agrees with the human with probability σ(|m|): calibrated by construction.
    correct = rng.random(m.size) < metrics.sigmoid(np.abs(m))
    signed = np.where(correct, np.abs(m), -np.abs(m))  # margin toward the human's choice
    assert metrics.calibration(signed).ece < 0.02
    assert metrics.calibration(signed * 5).ece > 0.05  # overconfident by 5x


def test_rankdata_average_ties_and_spearman():
    assert metrics.rankdata([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert metrics.spearman([1, 2, 3, 4], [10, 100, 1000, 10000]) == pytest.approx(1.0)
    assert metrics.pearson([1, 2, 3, 4], [10, 100, 1000, 10000]) < 0.9
    assert math.isnan(metrics.pearson([1, 1, 1], [1, 2, 3]))


def test_length_bias_split():
    # chosen longer in pairs 0,1,2 (wins 2); shorter in 3,4 (wins 0); equal in 5.
    o = [1, 1, 0, 0, 0.5, 1]
    lb = metrics.length_bias(o, [10, 10, 10, 1, 1, 5], [1, 1, 1, 10, 10, 5], r_chosen=[3, 3, 1, 0, 1, 2],
                             r_rejected=[1, 1, 2, 1, 1, 1])
    assert lb.acc_chosen_longer == pytest.approx(2 / 3) and lb.n_chosen_longer == 3
    assert lb.acc_chosen_shorter == 0.0 and lb.n_chosen_shorter == 2
    assert lb.n_equal_length == 1
    assert lb.pearson is not None and lb.pearson > 0  # longer answers got higher rewards here
    assert metrics.length_bias(o, [1] * 6, [2] * 6).pearson is None  # a judge: no rewards
