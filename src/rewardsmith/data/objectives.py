"""What a preference label means: its objective, and who gave it.

A pair's `objective` says what "chosen is better" was judged on, and its `labeler` who judged it.
They decide what an accuracy measures and what a model learns: hh-rlhf's harmless-base prefers
the refusal, its helpful subsets the useful answer, so a model trained on the first applies the
refusal rule to ordinary requests (measured: a Korean model trained on harmlessness pairs alone
ranked "싫어요" first). Reports and validation group by (language, objective, labeler) and never
pool them into one number.

    objective   helpfulness | harmlessness | correctness | general
    labeler     human | llm-judge

Known datasets get theirs from their format (by subset where one set mixes objectives: hh-rlhf,
PKU-SafeRLHF); our own JSONL carries the fields; a row's `label_info.judge_type == "llm"` (the
judge-labelled sets' convention, and synth's pairs) means an LLM judge; everything else takes the
`objective=` a user gives its source, or stays unknown (None) and is reported so.
"""

from __future__ import annotations

from collections.abc import Callable

from rewardsmith.data.record import PreferencePair
from rewardsmith.errors import RewardsmithError

OBJECTIVES = ("helpfulness", "harmlessness", "correctness", "general")
LABELERS = ("human", "llm-judge")

# A format's objective: fixed, or read from the pair's subset (one file per objective).
ObjectiveRule = str | Callable[[str | None], str | None] | None


def by_subset(subset: str | None) -> str | None:
    """hh-rlhf / hh-rlhf-ko / PKU-SafeRLHF subsets: harmless-base and `safer` are harmlessness,
    helpful-* and `better` helpfulness; red-team attempts and anything else unknown."""
    s = (subset or "").lower()
    if s.startswith("harmless") or s == "safer":
        return "harmlessness"
    if s.startswith("helpful") or s == "better":
        return "helpfulness"
    return None


def check_objective(value: str | None, where: str = "objective") -> str | None:
    """`value` if it is one of OBJECTIVES (or None); raises RewardsmithError naming the choices."""
    if value is None or value in OBJECTIVES:
        return value
    raise RewardsmithError(f"{where}: {value!r} is not an objective; use one of {', '.join(OBJECTIVES)}")


def check_labeler(value: str | None, where: str = "labeler") -> str | None:
    """`value` if it is one of LABELERS (or None); raises RewardsmithError naming the choices."""
    if value is None or value in LABELERS:
        return value
    raise RewardsmithError(f"{where}: {value!r} is not a labeler; use one of {', '.join(LABELERS)}")


def label(pairs: list[PreferencePair], rule: ObjectiveRule, labeler: str | None,
          default: str | None = None) -> None:
    """Fill each pair's objective and labeler where the reader left them unset, in place.

    rule: the format's objective (fixed or by subset); default: the user's `objective=` for a
    source, used where the format has none. An LLM-judge `label_info` wins over the format's labeler.
    """
    for p in pairs:
        if p.objective is None:
            p.objective = (rule(p.subset) if callable(rule) else rule) or default
        if p.labeler is None:
            judged = str(p.label_info.get("judge_type", "")).lower() in ("llm", "llm-judge")
            p.labeler = "llm-judge" if judged else labeler


def group_name(p: PreferencePair) -> str:
    """"ko/helpfulness/llm-judge": the unit every report and validation table groups by."""
    return f"{p.language or 'unknown'}/{p.objective or 'unknown'}/{p.labeler or 'unknown'}"
