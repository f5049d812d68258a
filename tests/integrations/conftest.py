"""Tiny reward models saved the way a trained one arrives (init + save with calibration statistics),
with their heads spread (std 1) so that a wrong input format or pooling moves a score visibly."""

from __future__ import annotations

from pathlib import Path

import pytest


def saved_rm(base: Path, out: Path) -> Path:
    import torch

    from rewardsmith.models import init_reward_model, save_reward_model

    rm = init_reward_model(base, max_length=128)
    torch.manual_seed(1)
    head = getattr(rm.model, "score", None) or rm.model.classifier
    with torch.no_grad():
        head.weight.normal_(0, 1.0)
    return save_reward_model(rm, out, score_stats=(0.5, 2.0))


@pytest.fixture(scope="session")
def encoder_rm(tiny_encoder_dir, tmp_path_factory) -> Path:
    """A BERT reward model: `[CLS] prompt [SEP] response [SEP]`."""
    return saved_rm(tiny_encoder_dir, tmp_path_factory.mktemp("rm-encoder"))


@pytest.fixture(scope="session")
def decoder_rm(tiny_decoder_dir, tmp_path_factory) -> Path:
    """A Llama reward model on the chat template, with its own pad token."""
    return saved_rm(tiny_decoder_dir, tmp_path_factory.mktemp("rm-decoder"))
