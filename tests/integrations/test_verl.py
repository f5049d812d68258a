"""verl's custom reward function, loaded and called exactly as verl does (verl itself is not installed).

From verl's source (verl/trainer/ppo/reward.py, verl/workers/reward_manager/{naive,batch}.py): the
file at `custom_reward_function.path` is imported with `spec_from_file_location("custom_module",
path)`, the function named by `.name` is wrapped so `reward_kwargs` join every call, and
- NaiveRewardManager calls it per response: compute_score(data_source=, solution_str=,
  ground_truth=, extra_info=), with data_source and extra_info taken from numpy object arrays;
- BatchRewardManager once per batch: compute_score(data_sources=, solution_strs=, ground_truths=,
  extra_infos=), data_sources and extra_infos being numpy object arrays.
"""

from __future__ import annotations

import functools
import importlib.util
import sys

import numpy as np
import pytest

from rewardsmith.errors import RewardsmithError
from rewardsmith.models import load_reward_model
from rewardsmith.score import Scorer

ROWS = [  # what a verl parquet row holds after preprocessing that copies the prompt into extra_info
    {"data_source": "ja-chat", "prompt": [{"role": "user", "content": "卵のゆで方は？"}], "answer": "9分ゆでます。"},
    {"data_source": "ko-chat", "prompt": [{"role": "system", "content": "짧게 답하세요."},
                                          {"role": "user", "content": "광화문에 어떻게 가나요?"}],
     "answer": "5호선 광화문역에서 내리세요."},
    {"data_source": "en-chat", "prompt": "How do I boil an egg?", "answer": "Put it in boiling water for nine minutes."},
]


def verl_custom_reward_fn(name: str, reward_kwargs: dict):
    """verl's get_custom_reward_fn: import the file as custom_module, merge reward_kwargs into each call."""
    import rewardsmith.integrations.verl as ours

    spec = importlib.util.spec_from_file_location("custom_module", ours.__file__)
    module = importlib.util.module_from_spec(spec)
    sys.modules["custom_module"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["custom_module"]
    raw_fn = getattr(module, name)
    return functools.partial(lambda fn, extra, *a, **kw: fn(*a, **{**kw, **extra}), raw_fn, dict(reward_kwargs))


def _expected(rm_dir, normalize=False):
    rm = load_reward_model(rm_dir)
    rewards = Scorer(rm, precision="fp32").score(
        [(r["prompt"] if isinstance(r["prompt"], list) else [{"role": "user", "content": r["prompt"]}], r["answer"])
         for r in ROWS])
    if normalize:
        rewards = [(x - rm.manifest.score_mean) / rm.manifest.score_std for x in rewards]
    return rewards


@pytest.mark.parametrize("normalize", [False, True])
def test_batch_and_naive_managers_get_the_library_scores(decoder_rm, normalize):
    kwargs = {"model": str(decoder_rm), "precision": "fp32", "normalize": normalize}
    data_sources = np.array([r["data_source"] for r in ROWS], dtype=object)
    extra_infos = np.array([{"split": "train", "index": i, "prompt": np.array(r["prompt"], dtype=object)
                             if isinstance(r["prompt"], list) else r["prompt"]} for i, r in enumerate(ROWS)],
                           dtype=object)
    expected = _expected(decoder_rm, normalize)

    batch = verl_custom_reward_fn("compute_score_batch", kwargs)
    got = batch(data_sources=data_sources, solution_strs=[r["answer"] for r in ROWS],
                ground_truths=[None] * len(ROWS), extra_infos=extra_infos)
    assert got == pytest.approx(expected, abs=1e-5)

    naive = verl_custom_reward_fn("compute_score", kwargs)
    for i, r in enumerate(ROWS):
        extra_info = dict(extra_infos[i], num_turns=None)  # the naive manager adds num_turns
        score = naive(data_source=data_sources[i], solution_str=r["answer"], ground_truth=None, extra_info=extra_info)
        assert isinstance(score, float) and score == pytest.approx(expected[i], abs=1e-5)


def test_missing_prompt_names_the_fix(encoder_rm):
    fn = verl_custom_reward_fn("compute_score", {"model": str(encoder_rm)})
    with pytest.raises(RewardsmithError, match=r"extra_info\[0\] has no 'prompt'.*preprocessing"):
        fn(data_source="x", solution_str="hi", ground_truth=None, extra_info={"index": 0})
    with pytest.raises(RewardsmithError, match="exactly one"):
        verl_custom_reward_fn("compute_score", {})(data_source="x", solution_str="hi", ground_truth=None,
                                                   extra_info={"prompt": "q"})
