"""The Bradley-Terry reward-model loss (imports only torch).

A reward model r(x, y) is trained so that P(chosen > rejected) = sigmoid(r_c - r_r)
(Bradley & Terry 1952; Ouyang et al. 2022, eq. 1). Options, both from the literature and TRL:
- a per-pair `margin` m: loss = -log sigmoid(r_c - r_r - m), Llama-2 (Touvron et al. 2023, sec. 3.2.2);
  a strongly preferred pair must be separated by more than a weak one.
- a per-pair `offset` o added to the logit: loss = -log sigmoid(r_c - r_r + o), e.g. a learned
  length term beta * (log len_c - log len_r) that explains the judges' taste for longer answers so
  the reward does not have to (train config `length_control`).
- reward centring: + coef * mean(r^2) over all rewards in the batch (Eisenstein et al. 2023,
  "Helping or Herding?"), so rewards stay near 0 and are comparable across runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def split_rewards(rewards: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(2B,) or (2B, 1) rewards of one forward pass -> (chosen (B,), rejected (B,)).

    The batch layout is fixed: rows 0..B-1 are the chosen responses, rows B..2B-1 the rejected
    responses of the same pairs in the same order.
    """
    rewards = rewards.reshape(-1)
    assert rewards.numel() % 2 == 0, f"expected 2B rewards (chosen rows, then rejected), got {rewards.numel()}"
    half = rewards.numel() // 2
    return rewards[:half], rewards[half:]


def bradley_terry_loss(
    rewards: torch.Tensor,
    margin: torch.Tensor | None = None,
    center_rewards_coef: float | None = None,
    weight: torch.Tensor | None = None,
    offset: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean Bradley-Terry loss of a batch.

    rewards: (2B,) or (2B, 1) — chosen rows, then rejected rows (see `split_rewards`).
    margin:  (B,) per-pair margins, or None. Pairs without a margin should carry 0.
    center_rewards_coef: weight of mean(r^2) over all 2B rewards, or None/0 for none.
    weight:  (B,) per-pair loss weights (a group's share of the objective), or None for all 1;
             the mean is over pairs, not over weights, so a batch of down-weighted pairs moves less.
    offset:  (B,) added to r_c - r_r (gradients flow into it), or None.
    Returns a scalar tensor (in float32 even under bf16 autocast, so the log-sigmoid is accurate).
    """
    chosen, rejected = split_rewards(rewards.float())
    diff = chosen - rejected  # (B,)
    if margin is not None:
        diff = diff - margin.to(diff.device, diff.dtype)
    if offset is not None:
        diff = diff + offset.to(diff.device, diff.dtype)
    # logsigmoid is the numerically stable form of log(sigmoid(x)) for large |x|.
    per_pair = -F.logsigmoid(diff)
    if weight is not None:
        per_pair = per_pair * weight.to(diff.device, diff.dtype)
    loss = per_pair.mean()
    if center_rewards_coef:
        loss = loss + center_rewards_coef * torch.cat([chosen, rejected]).pow(2).mean()
    return loss
