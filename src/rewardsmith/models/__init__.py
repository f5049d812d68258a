"""Reward models: loading/initialising/saving, the checkpoint manifest and THE one input format.

    from rewardsmith.models import load_reward_model, encode, collate
    rm = load_reward_model("out/rm")
    ids = encode(rm.tokenizer, rm.manifest, [{"role": "user", "content": "Hi"}], "Hello!")

Importing this package does not import torch or transformers; the functions do, when called.
"""

from rewardsmith.models.embedded import EMBEDDED, gguf_path, prepare
from rewardsmith.models.formatting import TruncationStats, collate, encode, flatten_prompt, render
from rewardsmith.models.loading import (
    RewardModel,
    init_reward_model,
    load_reward_model,
    reward_forward,
    save_reward_model,
)
from rewardsmith.models.manifest import MANIFEST_NAME, Manifest

__all__ = [
    "EMBEDDED", "gguf_path", "prepare",
    "MANIFEST_NAME", "Manifest", "RewardModel", "TruncationStats", "collate", "encode", "flatten_prompt",
    "init_reward_model", "load_reward_model", "render", "reward_forward", "save_reward_model",
]
