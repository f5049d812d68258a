"""The in-process backend on the tiny random decoder (ChatML template, no pad token)."""

from __future__ import annotations

from rewardsmith.judge import Cache, Client, judge_pairs
from rewardsmith.data.record import PreferencePair
from rewardsmith.judge.backends import Completion, Request, load_backend


def test_greedy_batches_match_single_requests_and_samples_reproduce(tiny_decoder_dir, tmp_path):
    backend = load_backend(f"local:{tiny_decoder_dir}", batch_size=4)
    prompts = ["How do I boil an egg?", "光合成とは？", "광화문에 어떻게 가나요? 자세히 알려 주세요."]
    greedy = [Request.chat([{"role": "user", "content": p}], max_tokens=6) for p in prompts]
    batched = dict(backend.complete(greedy))
    assert sorted(batched) == [0, 1, 2] and all(isinstance(c, Completion) for c in batched.values())
    assert all(c.completion_tokens <= 6 and c.prompt_tokens > 0 for c in batched.values())
    # left padding must not change what a shorter prompt generates
    alone = dict(backend.complete(greedy[:1]))
    assert alone[0].text == batched[0].text

    sampled = [Request.chat([{"role": "user", "content": prompts[0]}], max_tokens=6, temperature=1.0, seed=s)
               for s in (1, 2, 1)]
    out = dict(backend.complete(sampled))
    assert out[0].text == out[2].text  # same seed, same sample


def test_local_judge_runs_end_to_end_and_caches(tiny_decoder_dir, tmp_path):
    """A random model's replies are not verdicts: they must come back as counted failures, not guesses."""
    client = Client(load_backend(f"local:{tiny_decoder_dir}"), Cache(tmp_path / "c.sqlite"))
    pair = PreferencePair(id="x", prompt=[{"role": "user", "content": "Why is the sky blue?"}],
                          chosen="Rayleigh scattering.", rejected="Because.", language="en")
    [v] = judge_pairs(client, [pair], max_tokens=4)
    assert v.raw[0] is not None and v.raw[1] is not None
    if v.winner is None:
        assert v.failure
    assert client.counters.sent == 2
    judge_pairs(client, [pair], max_tokens=4)
    assert client.counters.sent == 2 and client.counters.cached == 2
