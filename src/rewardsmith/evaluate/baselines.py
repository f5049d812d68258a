"""Rules with no model, beside every model in every table: "the longer answer wins" and "the
shorter answer wins".

On many preference sets the chosen answer is simply the longer one (ko-llm-judged: 74% of pairs;
hh-rlhf helpful: most), so a trained model's accuracy means little until it beats the better of
the two rules on the same pairs. A model that does not has learnt nothing the length did not
already say; one below "shorter wins" on a helpfulness set has learnt a refusal rule.

Length is counted in the model's tokens when the table has exactly one reward model (what it
sees, truncation aside), in characters otherwise (fair within a language, not across: compare
rows of one language).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rewardsmith.data.record import PreferencePair
from rewardsmith import metrics

LengthOf = Callable[[str], int]


class LengthBaseline:
    """An Evaluator that prefers the longer (or the shorter) response; equal lengths are a tie."""

    kind = "baseline"

    def __init__(self, longer: bool, length: LengthOf = len, unit: str = "characters"):
        self.longer = longer
        self.length = length
        self.unit = unit
        self.name = f"{'longer' if longer else 'shorter'} wins ({unit})"

    def judge(self, pairs: Sequence[PreferencePair], *, desc: str = ""):
        from rewardsmith.evaluate.run import Judgement

        lc = np.array([self.length(p.chosen) for p in pairs], dtype=np.float64)
        lr = np.array([self.length(p.rejected) for p in pairs], dtype=np.float64)
        return Judgement(metrics.outcomes_from_scores(lc, lr) if self.longer else metrics.outcomes_from_scores(lr, lc))

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "rule": f"the {'longer' if self.longer else 'shorter'} "
                f"response wins, length in {self.unit}; equal length is a tie"}


def length_baselines(length: LengthOf = len, unit: str = "characters") -> list[LengthBaseline]:
    """["longer wins", "shorter wins"] counting `length` in `unit`."""
    return [LengthBaseline(True, length, unit), LengthBaseline(False, length, unit)]


def token_length(model: str) -> LengthOf:
    """Response length in the tokens of `model` (a folder, an embedded name or a hub id): the
    tokenizer alone is loaded. Raises RewardsmithError when there is none."""
    from transformers import AutoTokenizer

    from rewardsmith.models.loading import locate_model

    tokenizer = AutoTokenizer.from_pretrained(locate_model(model), trust_remote_code=False)
    cache: dict[str, int] = {}

    def count(text: str) -> int:
        if text not in cache:  # judge-labelled sets pair the same answers many times
            cache[text] = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        return cache[text]

    return count


def baselines_for(models: list[str]) -> list:
    """The length-baseline rows: lengths in the model's tokens when there is one model, else characters."""
    if len(models) == 1:
        return length_baselines(token_length(models[0]), "tokens")
    return length_baselines()
