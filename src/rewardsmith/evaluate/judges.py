"""An LLM judge as a row of the evaluation table (the cards' gpt-4o / calm3 "as judge" rows).

Wraps `rewardsmith.judge`: every pair is judged in both answer orders; the judge's verdict maps
to the table's outcomes as
    winner == chosen (response_1)     -> win  (1.0)
    winner == rejected (response_2)   -> loss (0.0)
    tie (explicit, or the two orders disagreed)  -> tie (0.5; not a win)
    failed (unparseable reply / request error) or not judgeable -> loss (0.0), counted in `failures`
A failure is never guessed into a verdict; counting it as "not a win" keeps n equal to the
reward models' n on the same dataset. Pairs whose answers reply to different conversations
(`rejected_prompt` set) cannot be shown side by side and count as not judgeable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardsmith.data.record import PreferencePair
from rewardsmith.metrics import LOSS, TIE, WIN
from rewardsmith.evaluate.run import Judgement


class JudgeEvaluator:
    """A judge row: outcomes from `judge_pairs`, no rewards (so no calibration or reward plots)."""

    kind = "judge"

    def __init__(self, client, *, spec: str, label: str | None = None):
        self.client = client
        self.spec = spec
        self.name = label or f"{client.model_id} (judge)"
        self.counts: Counter = Counter()

    @classmethod
    def from_spec(cls, spec: str, *, cache_dir: str | Path | None = None, label: str | None = None) -> "JudgeEvaluator":
        """`openai:MODEL@URL`, `local:NAME`, `scripted:PATH` (see rewardsmith.judge.backends). Replies
        are cached in `cache_dir/judge.sqlite` so a rerun sends no request."""
        from rewardsmith.judge import make_client

        cache = Path(cache_dir) / "judge.sqlite" if cache_dir is not None else None
        return cls(make_client(spec, cache=cache), spec=spec, label=label)

    def judge(self, pairs: Sequence[PreferencePair], *, desc: str = "") -> Judgement:
        from rewardsmith.judge import RESPONSE_1, RESPONSE_2, judge_pairs

        verdicts = {v.pair_id: v for v in judge_pairs(self.client, pairs)}
        outcomes = []
        for p in pairs:
            v = verdicts.get(p.id)
            if v is None:
                self.counts["not judgeable"] += 1
                outcomes.append(LOSS)
            elif v.winner is None:
                self.counts["failures"] += 1
                outcomes.append(LOSS)
            else:
                self.counts["flips"] += v.flipped
                outcomes.append(WIN if v.winner == RESPONSE_1 else LOSS if v.winner == RESPONSE_2 else TIE)
        return Judgement(np.array(outcomes, dtype=np.float64))

    def info(self) -> dict[str, Any]:
        counters = getattr(self.client, "counters", None)
        return {"name": self.name, "kind": self.kind, "source": self.spec,
                "failures": self.counts["failures"], "not_judgeable": self.counts["not judgeable"],
                "order_flips": self.counts["flips"],
                "requests": counters.to_dict() if hasattr(counters, "to_dict") else None}
