"""The embedded base models become reward models that score Japanese, Korean and English."""

from __future__ import annotations

import math

import pytest
import torch

from rewardsmith.models import encode, init_reward_model
from rewardsmith.score import Scorer

ITEMS = {
    "ja": ([{"role": "user", "content": "栄養バランスの良い食事とは何ですか？"}], "主食、主菜、副菜をそろえることです。"),
    "ko": ([{"role": "user", "content": "광화문에 어떻게 가나요?"}], "지하철 5호선 광화문역에서 내리세요."),
    "en": ([{"role": "user", "content": "How do I boil an egg?"}], "Put it in boiling water for nine minutes."),
}


@pytest.mark.integration
@pytest.mark.parametrize("name", ["multilingual-e5-small", "gemma-3-270m", "smollm2-135m-instruct"])
def test_embedded_model_scores_ja_ko_en(name, embedded_model):
    torch.manual_seed(0)
    rm = init_reward_model(embedded_model(name), max_length=512)
    tok = rm.tokenizer
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    for language, (conv, response) in ITEMS.items():
        ids = encode(tok, rm.manifest, conv, response)
        assert tok.unk_token_id not in ids, f"{name} {language}: unknown tokens"
        assert response in tok.decode(ids), f"{name} {language}: response lost in encoding"

    scorer = Scorer(rm, precision="fp32")
    items = list(ITEMS.values())
    batch = scorer.score(items)
    single = [scorer.score([item])[0] for item in items]
    assert all(math.isfinite(r) for r in batch)
    assert max(abs(a - b) for a, b in zip(batch, single)) < 1e-4  # padding never changes a score
    assert len({round(r, 5) for r in batch}) == 3  # the untrained head still tells inputs apart
    bf16 = Scorer(rm, precision="bf16").score(items)
    assert max(abs(a - b) for a, b in zip(batch, bf16)) < 0.1 * max(abs(r) for r in batch) + 1e-3


@pytest.mark.integration
def test_compiled_gemma_scores_real_conversations_like_eager(embedded_model, shared_data):
    """torch.compile + the mask-skipping SDPA on the real model, bf16, across gemma's 512-token
    sliding window (both mask paths): the same scores as eager up to bf16 rounding."""
    from rewardsmith.data import load_pairs

    pairs = load_pairs(str(shared_data / "hh-rlhf-test" / "helpful-base.test.jsonl.gz")).pairs
    items = [p.chosen_conversation() for p in pairs[:600]]
    torch.manual_seed(0)
    rm = init_reward_model(embedded_model("gemma-3-270m"), max_length=4096, dtype=torch.bfloat16)
    lengths = [len(encode(rm.tokenizer, rm.manifest, conv, response)) for conv, response in items]
    order = sorted(range(len(items)), key=lengths.__getitem__)
    chosen = order[:20] + order[-4:]  # short ones, and the longest, past the window
    assert max(lengths[i] for i in chosen) > 512
    items = [items[i] for i in chosen]

    eager = Scorer(rm, precision="bf16").score(items)
    compiled = Scorer(rm, precision="bf16", compile=True).score(items)
    spread = max(eager) - min(eager)
    assert spread > 0
    assert max(abs(a - b) for a, b in zip(eager, compiled)) < 0.1 * spread, (eager, compiled)
