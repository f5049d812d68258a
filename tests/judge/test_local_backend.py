"""The in-process backend on the tiny random decoder (ChatML template, no pad token)."""

from __future__ import annotations

import pytest

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


def _verdict_requests(language="en"):
    from rewardsmith.judge.core import judge_requests

    prompt = [{"role": "user", "content": "Why is the sky blue?"}]
    return list(judge_requests(prompt, "Rayleigh scattering of sunlight.", "Because.", language, 8, "logprobs"))


def test_logprob_requests_read_the_next_token_distribution(tiny_decoder_dir):
    """One real forward pass per request: every choice gets a probability, batching changes nothing."""
    backend = load_backend(f"local:{tiny_decoder_dir}", batch_size=4)
    assert backend.mode == "logprobs"  # the local default
    requests = _verdict_requests("en") + _verdict_requests("ja")
    batched = dict(backend.complete(requests))
    for c in batched.values():
        assert set(c.probs) == {"A", "B", "C"} and all(0 < p < 1 for p in c.probs.values())
        assert sum(c.probs.values()) < 1  # raw mass of three tokens out of the whole vocabulary
        assert c.completion_tokens == 0 and c.prompt_tokens > 0
    alone = dict(backend.complete(requests[3:4]))  # a shorter prompt alone vs left-padded in a batch
    for choice, p in alone[0].probs.items():
        assert p == pytest.approx(batched[3].probs[choice], rel=1e-4, abs=1e-7)
    # the two orders are different prompts, so a real model gives them different distributions
    assert batched[0].probs != batched[1].probs


def test_logprob_verdicts_are_normalised_and_symmetric_under_swapping(tiny_decoder_dir):
    # one model (its missing lm_head is initialised at random on each load), no cache: the swapped
    # pair's requests are computed again, in their own batch
    backend = load_backend(f"local:{tiny_decoder_dir}")
    pair = PreferencePair(id="x", prompt=[{"role": "user", "content": "Why is the sky blue?"}],
                          chosen="Rayleigh scattering.", rejected="Because.", language="en")
    swapped = PreferencePair(id="y", prompt=pair.prompt, chosen=pair.rejected, rejected=pair.chosen, language="en")
    [v] = judge_pairs(Client(backend), [pair])
    [w] = judge_pairs(Client(backend), [swapped])
    assert v.mode == "logprobs" and v.failure is None and v.winner is not None
    for order in ("order_1", "order_2"):
        assert sum(v.probs[order].values()) == pytest.approx(1.0, abs=1e-5)
    assert sum(v.probs["combined"].values()) == pytest.approx(1.0, abs=1e-5)
    # swapping the responses swaps their probabilities (and the orders), the tie stays
    for mine, theirs in (("order_1", "order_2"), ("order_2", "order_1")):
        assert v.probs[mine] == pytest.approx(w.probs[theirs], abs=1e-5)
    assert v.probs["combined"]["response_1"] == pytest.approx(w.probs["combined"]["response_2"], abs=1e-6)
    assert v.probs["combined"]["tie"] == pytest.approx(w.probs["combined"]["tie"], abs=1e-6)
    swap = {"response_1": "response_2", "response_2": "response_1", "tie": "tie"}
    assert w.winner == swap[v.winner] and w.flipped == v.flipped


def test_text_mode_is_a_spec_setting(tiny_decoder_dir):
    backend = load_backend(f"local:{tiny_decoder_dir}?mode=text")
    assert backend.mode == "text" and backend.model_id == f"local:{tiny_decoder_dir}"
