"""A rewardsmith model as a TRL reward function: GRPOTrainer / RLOOTrainer `reward_funcs=[...]`.

    from rewardsmith.integrations.trl import RewardFunction
    trainer = GRPOTrainer(model=policy, reward_funcs=RewardFunction("out/rm"), train_dataset=prompts, ...)

How TRL (1.16) calls a reward function that is not a model (`GRPOTrainer._calculate_rewards`, the
same in RLOO): `f(prompts=[...], completions=[...], completion_ids=[...], **columns,
trainer_state=..., log_extra=..., log_metric=...)`, one entry per generated completion (each
prompt repeated num_generations times), and it expects a list of floats back. It logs the result
as `rewards/<f.__name__>/mean` and `/std`, and per completion in its completions table.

- plain-text datasets: prompts are strings, completions strings (decoded without special tokens);
  scored as the conversation [{"role": "user", "content": prompt}] plus the completion.
- conversational datasets: prompts are message lists, completions lists of messages ending with
  the assistant's turn ([{"role": "assistant", "content": ...}]); earlier completion messages
  join the conversation.

Scores come from `Scorer.score` with the model's manifest: its own input format (chat template or
`[CLS] prompt [SEP] response [SEP]`), truncation and pooling. Passing the model's path to
`reward_funcs` instead makes TRL tokenise `prompt + completion` (or its own chat-template
rendering) with padding on the right and read the logit where transformers' pooling says: the
score of an encoder trained on sentence pairs, or of a decoder whose pad token is its eos, then
differs from the one rewardsmith evaluated (tested; docs/integrations.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from rewardsmith.errors import RewardsmithError

if TYPE_CHECKING:
    from rewardsmith.models import RewardModel

Item = tuple[list[dict], str]


class RewardFunction:
    """Rewards for TRL's online trainers from a rewardsmith model; see the module docstring.

    model:        a model folder (or embedded name / hub id), or an already loaded RewardModel
                  (load it with `device=` to score on an accelerator).
    normalize:    return (reward - score_mean) / score_std from the manifest (raises when the
                  manifest has no statistics), so rewards of different models share a scale.
    precision:    the Scorer's: "auto" (bf16 where the hardware has it), "bf16" or "fp32".
    token_budget: padded tokens per forward pass (default: the Scorer's for the device).
    name:         what TRL logs the rewards under (default: the model folder's name).
    """

    def __init__(self, model: "str | Path | RewardModel", *, normalize: bool = False, precision: str = "auto",
                 token_budget: int | None = None, name: str | None = None, device: str | None = None):
        from rewardsmith.models import RewardModel, load_reward_model
        from rewardsmith.score import Scorer, scoring_dtype

        if isinstance(model, RewardModel):
            rm = model
        else:
            rm = load_reward_model(model, dtype=scoring_dtype(precision, device or "cpu"), device=device)
        self.scorer = Scorer(rm, token_budget=token_budget, precision=precision)
        self.scale = _scale(rm) if normalize else None
        folder = Path(rm.path).name if rm.path else None
        # TRL names a reward function by `__name__` (trl.trainer.utils.get_callable_name).
        self.__name__ = name or folder or "rewardsmith"

    def items(self, prompts: Sequence[Any], completions: Sequence[Any]) -> list[Item]:
        """(conversation, response) per completion, from TRL's plain-text or conversational values."""
        if len(prompts) != len(completions):
            raise RewardsmithError(f"{len(prompts)} prompts but {len(completions)} completions; TRL passes one "
                                   "prompt per completion")
        return [_item(i, p, c) for i, (p, c) in enumerate(zip(prompts, completions))]

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **_trl_columns: Any) -> list[float]:
        """One reward per completion, in order. TRL's other arguments (completion_ids, the dataset's
        extra columns, trainer_state, log_extra, log_metric) do not change a score and are ignored."""
        return self.score(self.items(prompts, completions))

    def score(self, items: Sequence[Item]) -> list[float]:
        """Rewards for (conversation, response) items, normalised when asked."""
        rewards = self.scorer.score(items)
        if self.scale is not None:
            mean, std = self.scale
            rewards = [(r - mean) / std for r in rewards]
        return rewards


def _scale(rm: "RewardModel") -> tuple[float, float]:
    mean, std = rm.manifest.score_mean, rm.manifest.score_std
    if mean is None or std is None or not std > 0:
        where = f"{rm.path}/rewardsmith.json" if rm.path else "the model's manifest"
        raise RewardsmithError(f"normalize=True needs score_mean and a positive score_std in {where} (it has "
                               f"score_mean={mean}, score_std={std}); `rewardsmith train` writes them, or leave "
                               "normalize off")
    return mean, std


def _item(i: int, prompt: Any, completion: Any) -> Item:
    """(conversation, response) for completion i; raises RewardsmithError naming what TRL passed."""
    from rewardsmith.data.common import BadRow, as_messages

    try:
        conversation = as_messages(prompt, f"prompts[{i}]")
        if isinstance(completion, str):
            return conversation, completion
        turns = as_messages(completion, f"completions[{i}]") if isinstance(completion, list) else None
    except BadRow as e:
        raise RewardsmithError(f"{e.detail or e.reason}; a reward function gets text, or {{role, content}} "
                               "messages with text content, from TRL") from None
    if not turns or turns[-1]["role"] != "assistant":
        raise RewardsmithError(f"completions[{i}] = {completion!r:.120}: expected a string or messages ending "
                               "with an assistant turn")
    return conversation + turns[:-1], turns[-1]["content"]
