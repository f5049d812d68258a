"""Held-out validation's slices: intervals over whole prompts, and the two sides of a set judged
against one baseline model (Arena-Hard style), each checked against the rewards it returns."""

import numpy as np
import torch

from rewardsmith.models import init_reward_model
from rewardsmith.train.data import EncodedPair
from rewardsmith.train.loop import RewardModule, evaluate_pairs


def test_validation_counts_prompts_and_reports_the_baseline_sides_apart(tiny_encoder_dir):
    from accelerate import Accelerator

    g = torch.Generator().manual_seed(0)
    pairs = []
    for i in range(30):  # 6 prompts x 5 pairs; the baseline model's answer chosen in pairs 0, 3, 6, ...
        c, r = (torch.randint(5, 200, (int(torch.randint(2, 12, (1,), generator=g)),), generator=g).tolist()
                for _ in range(2))
        pairs.append(EncodedPair(c, r, 0.0, "ko", "ko/helpfulness/llm-judge", prompt_key=f"q{i // 5}",
                                 baseline_chosen=i % 3 == 0, response_tokens=(len(c), len(r))))
    pairs += [EncodedPair([7, 8], [9], 0.0, "en", "en/helpfulness/human", prompt_key=f"p{i}") for i in range(4)]
    rm = init_reward_model(tiny_encoder_dir, max_length=64)
    val, rewards = evaluate_pairs(RewardModule(rm.model), pairs, Accelerator(cpu=True), rm.pad_id, "right", 4,
                                  return_rewards=True)
    won = np.array(rewards[:len(pairs)]) > np.array(rewards[len(pairs):])
    ko = val["by_group"]["ko/helpfulness/llm-judge"]
    assert (ko["n"], ko["prompts"], val["prompts"]) == (30, 6, 10)
    side = ko["baseline_side"]
    assert (side["baseline_chosen"]["n"], side["baseline_rejected"]["n"]) == (10, 20)
    assert side["baseline_chosen"]["accuracy"] == won[0:30:3].mean()
    assert side["baseline_rejected"]["accuracy"] == np.delete(won[:30], np.arange(0, 30, 3)).mean()
    assert "baseline_side" not in val["by_group"]["en/helpfulness/human"]  # no baseline model there
    assert ko["ci95"][0] <= ko["accuracy"] <= ko["ci95"][1]
