"""Golden tests: the loss against numbers computed by hand."""

import math

import pytest
import torch

from rewardsmith.loss import bradley_terry_loss, split_rewards


def _nll(x: float) -> float:
    return -math.log(1.0 / (1.0 + math.exp(-x)))


def test_plain_bradley_terry_matches_hand_computation():
    # chosen 2.0, 0.5 ; rejected 1.0, 1.5  -> diffs 1.0, -1.0
    rewards = torch.tensor([2.0, 0.5, 1.0, 1.5])
    expected = (_nll(1.0) + _nll(-1.0)) / 2  # = (0.31326 + 1.31326) / 2 = 0.81326
    assert bradley_terry_loss(rewards).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.813262, abs=1e-6)


def test_margin_is_subtracted_per_pair():
    rewards = torch.tensor([[2.0], [0.5], [1.0], [1.5]])  # (2B, 1) as a score head returns
    margin = torch.tensor([0.5, 2.0])
    expected = (_nll(1.0 - 0.5) + _nll(-1.0 - 2.0)) / 2
    assert bradley_terry_loss(rewards, margin=margin).item() == pytest.approx(expected, rel=1e-6)


def test_reward_centring_adds_coef_times_mean_square():
    rewards = torch.tensor([2.0, 0.5, 1.0, 1.5])
    mean_sq = (4.0 + 0.25 + 1.0 + 2.25) / 4
    expected = (_nll(1.0) + _nll(-1.0)) / 2 + 0.01 * mean_sq
    got = bradley_terry_loss(rewards, center_rewards_coef=0.01).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_layout_is_chosen_rows_then_rejected_rows():
    chosen, rejected = split_rewards(torch.arange(6.0))
    assert chosen.tolist() == [0.0, 1.0, 2.0] and rejected.tolist() == [3.0, 4.0, 5.0]


def test_gradient_pushes_chosen_up_and_rejected_down():
    rewards = torch.tensor([0.0, 0.0], requires_grad=True)
    bradley_terry_loss(rewards).backward()
    assert rewards.grad[0] < 0 < rewards.grad[1]  # gradient descent raises r_c, lowers r_r
    assert rewards.grad[0].item() == pytest.approx(-0.5)


def test_large_differences_stay_finite():
    loss = bradley_terry_loss(torch.tensor([-500.0, 500.0]))
    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(1000.0)


def test_per_pair_weights_scale_each_pair_and_average_over_pairs():
    rewards = torch.tensor([2.0, 0.5, 1.0, 1.5])  # diffs 1.0, -1.0
    weight = torch.tensor([2.0, 0.0])  # the second pair's group weighted out
    expected = (2.0 * _nll(1.0) + 0.0 * _nll(-1.0)) / 2  # mean over the 2 pairs, not over the weights
    assert bradley_terry_loss(rewards, weight=weight).item() == pytest.approx(expected, rel=1e-6)
    assert bradley_terry_loss(rewards, weight=torch.ones(2)).item() == pytest.approx(bradley_terry_loss(rewards).item())


def test_offset_is_added_to_the_logit_and_gets_gradients():
    # length control: o = beta * (log len_c - log len_r) explains part of the preference
    rewards = torch.tensor([2.0, 0.5, 1.0, 1.5])
    beta = torch.tensor(0.5, requires_grad=True)
    offset = beta * torch.tensor([1.0, -2.0])
    expected = (_nll(1.0 + 0.5) + _nll(-1.0 - 1.0)) / 2
    loss = bradley_terry_loss(rewards, offset=offset)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    # d/dbeta of mean(-log sigmoid(d_i + beta * l_i)) = mean(-(1 - sigmoid(d_i + beta l_i)) * l_i)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    grad = (-(1 - sig(1.5)) * 1.0 + -(1 - sig(-2.0)) * -2.0) / 2
    assert beta.grad.item() == pytest.approx(grad, rel=1e-5)
