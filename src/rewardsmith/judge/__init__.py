"""LLM judge: pairwise prompts (ja/ko/en), verdict parsing, both-order judging, swappable backends.

    from rewardsmith.judge import make_client, judge_pairs, summarize
    judge = make_client("openai:smollm2@http://127.0.0.1:8080/v1", cache="judge-cache.sqlite")
    verdicts = judge_pairs(judge, pairs)        # list[Verdict], one per pair
    print(summarize(verdicts).accuracy, judge.counters)

Importing this package needs no backend library: `openai` and `transformers` load on first use.
"""

from __future__ import annotations

from pathlib import Path

from rewardsmith.judge.cache import Cache, Client, Counters
from rewardsmith.judge.core import (
    RESPONSE_1,
    RESPONSE_2,
    TIE,
    JudgeSummary,
    ParseFailure,
    Verdict,
    judge_pairs,
    judge_triples,
    parse_verdict,
    summarize,
)

__all__ = [
    "RESPONSE_1", "RESPONSE_2", "TIE", "Cache", "Client", "Counters", "JudgeSummary", "ParseFailure",
    "Verdict", "judge_pairs", "judge_triples", "make_client", "parse_verdict", "summarize",
]


def make_client(spec: str, cache: str | Path | None = None, **options) -> Client:
    """A cached client for a backend spec ('openai:MODEL@URL', 'local:NAME', 'scripted:PATH')."""
    from rewardsmith.judge.backends import load_backend

    return Client(load_backend(spec, **options), Cache(cache) if cache else None)
