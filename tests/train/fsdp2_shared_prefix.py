"""Run under `python -m torch.distributed.run --nproc_per_node 2` (CPU, gloo) by test_shared_prefix:
a tiny decoder's RewardModule under FSDP2 (`fully_shard` per layer, as accelerate's
TRANSFORMER_BASED_WRAP does) against the same module unwrapped. Rank 0 prints one JSON line per rank."""

import json
import sys

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard

from rewardsmith.loss import bradley_terry_loss
from rewardsmith.models import init_reward_model
from rewardsmith.train.data import EncodedPair, make_batch
from rewardsmith.train.loop import RewardModule, batch_rewards, shards_parameters


def module(path):
    torch.manual_seed(0)
    return RewardModule(init_reward_model(path, max_length=512).model)


def rewards_and_grads(model, batch):
    rewards = batch_rewards(model, batch, "cpu")
    bradley_terry_loss(rewards).backward()
    grads = {n: p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad
             for n, p in model.named_parameters() if p.grad is not None}
    return rewards.detach(), grads


def main(path):
    dist.init_process_group("gloo")
    g = torch.Generator().manual_seed(1)
    pairs = []
    for n_prompt, n_c, n_r in [(40, 5, 9), (43, 7, 2)]:
        prompt = torch.randint(5, 200, (n_prompt,), generator=g).tolist()
        pairs.append(EncodedPair(prompt + torch.randint(5, 200, (n_c,), generator=g).tolist(),
                                 prompt + torch.randint(5, 200, (n_r,), generator=g).tolist(), 0.0, "en"))
    reference = module(path)
    sharded = module(path)
    for layer in sharded.model.base_model.layers:
        fully_shard(layer)
    fully_shard(sharded)
    whole = make_batch(pairs, 0, share_prefix=False)
    ref_rewards, ref_grads = rewards_and_grads(reference, whole)
    rewards, grads = rewards_and_grads(sharded, whole)
    result = {"detected": shards_parameters(sharded), "unwrapped": shards_parameters(reference),
              "whole_rewards": float((rewards - ref_rewards).abs().max()),
              "whole_grads": max(float((grads[n] - ref_grads[n]).abs().max()) for n in ref_grads),
              "grads": len(grads) == len(ref_grads)}
    shared = make_batch(pairs, 0, share_prefix=True)
    assert "prefix_ids" in shared
    sharded.zero_grad()
    try:
        rewards_and_grads(sharded, shared)
        result["shared"] = "trained"
    except RuntimeError as e:
        result["shared"] = f"failed: {str(e)[:120]}"
    results = [None] * dist.get_world_size()
    dist.all_gather_object(results, result)  # printed by rank 0 alone: two writers interleave lines
    if dist.get_rank() == 0:
        print("\n".join(json.dumps(r) for r in results), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
