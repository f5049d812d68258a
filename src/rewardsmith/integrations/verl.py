"""A rewardsmith model as verl's custom reward function.

verl loads a reward function from a FILE (`custom_reward_function.path`, imported with
`importlib.util.spec_from_file_location`) and a function name (`.name`), and adds the config's
`custom_reward_function.reward_kwargs` to every call. Point it at this file:

    custom_reward_function.path=$(python -c "import rewardsmith.integrations.verl as m; print(m.__file__)")
    custom_reward_function.name=compute_score_batch        # with reward_model.reward_manager=batch
    +custom_reward_function.reward_kwargs.model=/models/rm  # or .url=http://rm-host:8000 (rewardsmith serve)

How verl calls it (verl/workers/reward_manager):
- naive manager: `compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)`
  once per response, `solution_str` decoded without special tokens;
- batch manager: `compute_score(data_sources=[...], solution_strs=[...], ground_truths=[...],
  extra_infos=[...])` once per batch -- one Scorer call, length-sorted batching: use this one.
A float per response is the reward (verl puts it on the response's last token).

verl does not pass the prompt: the data set's preprocessing must copy the conversation into
`extra_info["prompt"]` (the same messages as the row's `prompt` column, or its text). Without
it there is nothing to score the response against, and the call fails naming the fix.
Reward models load once per process and stay cached.
"""

from __future__ import annotations

import functools
import json
import urllib.error
import urllib.request
from typing import Any, Sequence

from rewardsmith.errors import RewardsmithError

Item = tuple[list[dict], str]


def compute_score(data_source: Any, solution_str: str, ground_truth: Any, extra_info: dict | None = None, *,
                  model: str | None = None, url: str | None = None, normalize: bool = False,
                  precision: str = "auto") -> float:
    """verl's naive reward manager: the reward of one response. See compute_score_batch."""
    return compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info], model=model, url=url,
                               normalize=normalize, precision=precision)[0]


def compute_score_batch(data_sources: Sequence[Any], solution_strs: Sequence[str], ground_truths: Sequence[Any],
                        extra_infos: Sequence[dict | None], *, model: str | None = None, url: str | None = None,
                        normalize: bool = False, precision: str = "auto") -> list[float]:
    """verl's batch reward manager: one reward per response, from a model folder (`model`, scored
    in this process) or a `rewardsmith serve` address (`url`). normalize: (reward - score_mean) /
    score_std from the model's manifest. data_sources and ground_truths do not change a score."""
    if (model is None) == (url is None):
        raise RewardsmithError("give custom_reward_function.reward_kwargs.model (a reward model folder) or "
                               ".url (a `rewardsmith serve` address), exactly one")
    items = [_item(i, info, response) for i, (info, response) in enumerate(zip(extra_infos, solution_strs))]
    if url is not None:
        return _score_remote(url, items, normalize)
    return _reward_function(model, normalize, precision).score(items)


@functools.lru_cache(maxsize=4)
def _reward_function(model: str, normalize: bool, precision: str):
    from rewardsmith.integrations.trl import RewardFunction

    return RewardFunction(model, normalize=normalize, precision=precision)


def _item(i: int, extra_info: dict | None, response: str) -> Item:
    from rewardsmith.data.common import BadRow, as_messages, check_prompt

    prompt = (extra_info or {}).get("prompt")
    if prompt is None:
        raise RewardsmithError(f"extra_info[{i}] has no 'prompt': verl passes only the response to a reward "
                               "function, so copy the conversation into extra_info in the data preprocessing, "
                               "e.g. extra_info={'prompt': row['prompt'], ...}")
    if hasattr(prompt, "tolist"):  # verl keeps non-tensor data in numpy object arrays
        prompt = prompt.tolist()
    try:
        return check_prompt(as_messages(prompt, f"extra_info[{i}]['prompt']")), response
    except BadRow as e:
        raise RewardsmithError(f"{e.detail or e.reason}; give the prompt as text or {{role, content}} messages "
                               "ending with a user turn") from None


def _score_remote(url: str, items: list[Item], normalize: bool) -> list[float]:
    """Rewards from a `rewardsmith serve` server's /score (its calibrated values when normalize)."""
    body = json.dumps({"items": [{"messages": c, "response": r} for c, r in items]}, ensure_ascii=False).encode()
    request = urllib.request.Request(f"{url.rstrip('/')}/score", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=600) as reply:
            answer = json.loads(reply.read())
    except urllib.error.HTTPError as e:
        raise RewardsmithError(f"{url}/score answered {e.code}: {e.read().decode(errors='replace')[:300]}") from None
    except urllib.error.URLError as e:
        raise RewardsmithError(f"{url}/score: cannot connect ({e.reason}); is `rewardsmith serve` running?") from None
    if not normalize:
        return answer["rewards"]
    if answer.get("calibrated") is None:
        raise RewardsmithError(f"normalize=True, but the model served at {url} has no score_mean/score_std in "
                               "its manifest; leave normalize off")
    return answer["calibrated"]
