"""The mask-skipping SDPA used under torch.compile: skips exactly when plain causal is exact."""

from __future__ import annotations

import json

import pytest
import torch

from rewardsmith.models import init_reward_model, save_reward_model
from rewardsmith.models.attention import NAME, _skip_or_sdpa_mask, use_causal_skip
from rewardsmith.score import Scorer

ITEMS = [([{"role": "user", "content": p}], r)
         for p in ("How do I boil an egg?", "こんにちは、元気ですか", "광화문에 어떻게 가나요?")
         for r in ("Nine minutes.", "Put it in boiling water, then cool it in cold water for a minute.")]


def test_no_mask_for_plain_causal_attention():
    assert _skip_or_sdpa_mask(2, 16, 16) is None
    assert _skip_or_sdpa_mask(2, 16, 16, local_size=512) is None  # inside the sliding window


@pytest.mark.parametrize("case", [
    {"attention_mask": torch.tensor([[1] * 16, [1] * 10 + [0] * 6], dtype=torch.bool)},  # padding
    {"local_size": 8},  # longer than the sliding window: the band must be built
    {"local_size": 16},
    {"q_offset": 4},  # a cache before the queries
    {"allow_is_causal_skip": False},  # transformers says the mask is not plain causal
])
def test_a_mask_whenever_plain_causal_would_be_wrong(case):
    mask = _skip_or_sdpa_mask(2, 16, 16 + case.get("q_offset", 0), **case)
    assert isinstance(mask, torch.Tensor) and mask.shape[-2:] == (16, 16 + case.get("q_offset", 0))
    assert not mask.all()  # something is masked out


def test_encoders_are_left_alone(tiny_encoder_dir):
    rm = init_reward_model(tiny_encoder_dir, max_length=96)
    before = rm.model.config._attn_implementation
    assert use_causal_skip(rm.model) is False
    assert rm.model.config._attn_implementation == before


def test_compiled_decoder_scores_unchanged_and_the_saved_config_is_stock(tiny_decoder_dir, tmp_path):
    rm = init_reward_model(tiny_decoder_dir, max_length=96)
    eager = Scorer(rm, precision="fp32").score(ITEMS)
    compiled = Scorer(rm, precision="fp32", compile=True)
    assert rm.model.config._attn_implementation == NAME
    assert max(abs(a - b) for a, b in zip(eager, compiled.score(ITEMS))) < 1e-5

    # With a padding mask (left padding, as pipeline-style callers send) the stock mask is built.
    tok = rm.tokenizer
    batch = tok(["a short one", "a much longer text that sets the padded length"], padding=True,
                padding_side="left", return_tensors="pt")
    with torch.inference_mode():
        switched = rm.model(**batch).logits
        rm.model.set_attn_implementation("sdpa")
        stock = rm.model(**batch).logits
    assert torch.allclose(switched, stock, atol=1e-5)

    rm.model.set_attn_implementation(NAME)
    out = save_reward_model(rm, tmp_path / "rm")
    config_text = (out / "config.json").read_text()
    assert NAME not in config_text
    assert json.loads(config_text).get("_attn_implementation") in (None, "sdpa")
