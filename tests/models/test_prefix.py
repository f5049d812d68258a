"""Shared-prefix scoring (models/prefix.py): responses to one conversation run its tokens once."""

from __future__ import annotations

import pytest
import torch

from rewardsmith.models import init_reward_model
from rewardsmith.models.formatting import plan_batches
from rewardsmith.models.prefix import MIN_SHARED_PREFIX, group_by_prefix
from rewardsmith.score import Scorer
from tests.tiny_models import tiny_decoder

LONG_PROMPT = ("Human: How do I boil an egg? Assistant: Put it in boiling water for nine minutes. "
               "The quick brown fox jumps over the lazy dog. 栄養バランスの良い食事とは何ですか？ ")
CONVERSATIONS = [
    [{"role": "user", "content": LONG_PROMPT + "Which is best?"}],
    [{"role": "user", "content": "광화문에 어떻게 가나요? " * 6},
     {"role": "assistant", "content": "지하철 5호선 광화문역에서 내리세요."},
     {"role": "user", "content": "한국어 문장도 처리할 수 있어야 합니다."}],
    [{"role": "user", "content": "Short?"}],  # too short a prefix to share: scored the usual way
]
# "Yes." is a prefix of "Yes. And ...": the shared part must still leave each a token of its own.
RESPONSES = ["Yes.", "Yes. And the quick brown fox jumps over the lazy dog.", "ありがとうございます。" * 3,
             "No", "주식, 주채, 부채를 갖추는 것입니다. " * 4]
ITEMS = [(c, r) for c in CONVERSATIONS for r in RESPONSES]


def test_groups_cover_every_sequence_once_and_leave_each_member_a_token():
    base = list(range(100, 100 + 40))
    seqs = [base + [1], base + [1, 2, 3], base + [7, 8], list(range(40)), base[:10] + [5] * 30, base]
    groups, singles = group_by_prefix(seqs, min_prefix=32)
    seen = sorted(singles + [i for _, members in groups for i in members])
    assert seen == list(range(len(seqs)))
    assert len(groups) == 1
    shared, members = groups[0]
    assert sorted(members) == [0, 1, 2, 5]
    assert shared == 39  # `base` itself is a member: one token of it stays its own
    for i in members:
        assert seqs[i][:shared] == seqs[members[0]][:shared] and len(seqs[i]) > shared


def test_a_run_stops_growing_when_adding_would_shrink_the_saving():
    a = list(range(300))
    seqs = [a + [1], a + [2], a[:40] + [9] * 5]  # the third shares only 40 of the 300
    groups, singles = group_by_prefix(seqs, min_prefix=32)
    assert groups == [(300, [0, 1])] and singles == [2]


def test_suffix_batches_respect_the_budget_and_the_cache_bound():
    lengths = [5, 50, 7, 48, 30]
    for budget in (1, 64, 200):
        batches = plan_batches(lengths, budget, cached=100)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        for b in batches:
            longest = max(lengths[i] for i in b)
            assert len(b) == 1 or (len(b) * longest <= budget and len(b) * (100 + longest) <= 8 * budget)


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def decoder(request, tmp_path_factory):
    path = tiny_decoder(tmp_path_factory.mktemp(request.param), seed=3, arch=request.param)
    rm = init_reward_model(path, max_length=256)
    torch.manual_seed(1)
    with torch.no_grad():  # spread the scores so a wrong pooled token shows
        rm.model.score.weight.normal_(0, 1.0)
    return rm


@pytest.mark.parametrize("budget", [1, 64, 100_000])
def test_shared_prefix_rewards_equal_the_full_forward(decoder, budget):
    full = Scorer(decoder, precision="fp32", share_prefix=False).score(ITEMS)
    scorer = Scorer(decoder, precision="fp32", token_budget=budget)
    shared = scorer.score(ITEMS)
    assert scorer.share_prefix and scorer.prefix_tokens_skipped > 0
    assert max(abs(a - b) for a, b in zip(full, shared)) < 1e-5
    assert len({round(s, 3) for s in full}) > len(ITEMS) // 2  # the inputs really score differently


def test_sharing_runs_fewer_tokens(decoder):
    seen = []
    hook = decoder.model.base_model.embed_tokens.register_forward_hook(
        lambda m, args, out: seen.append(args[0].numel()))
    try:
        Scorer(decoder, precision="fp32", share_prefix=False).score(ITEMS)
        unshared, seen[:] = sum(seen), []
        scorer = Scorer(decoder, precision="fp32", token_budget=100_000)
        scorer.score(ITEMS)
    finally:
        hook.remove()
    assert sum(seen) < 0.85 * unshared  # padded tokens through the embedding, both ways (measured: 2460 vs 3091)
    assert scorer.prefix_tokens_skipped >= 2 * (len(RESPONSES) - 1) * MIN_SHARED_PREFIX


def test_encoders_do_not_share(tiny_encoder_dir):
    rm = init_reward_model(tiny_encoder_dir, max_length=96)
    assert not Scorer(rm).share_prefix  # bidirectional: a prompt's states depend on the response


def test_a_suffix_batch_leaves_the_prefix_cache_as_it_was(decoder):
    from rewardsmith.models.prefix import _rows_of

    base = decoder.model.base_model
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]])
    with torch.inference_mode():
        cache = base(input_ids=ids, use_cache=True).past_key_values
        before = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]
        rows = _rows_of(cache, torch.tensor([1, 1, 0]))
        base(input_ids=torch.tensor([[20, 21], [22, 23], [24, 25]]), past_key_values=rows, use_cache=True,
             position_ids=torch.tensor([[6, 7]] * 3))
    for layer, (keys, values) in zip(cache.layers, before):
        assert torch.equal(layer.keys, keys) and torch.equal(layer.values, values)
    assert all(layer.keys.shape[0] == 3 for layer in rows.layers)  # the view grew instead, three rows
