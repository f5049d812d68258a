"""Length statistics for `rewardsmith data inspect`: characters always, tokens given a tokenizer.

    stats = length_stats(result.pairs, tokenizer=tok, max_length=4096)
    stats["prompt_chars"] == {"min": 3, "p50": 180, "p90": 920, "p99": 3100, "max": 8000, "mean": 310.2}

prompt/chosen/rejected tokens count the raw texts. `pair_tokens` (what `max_length` is checked
against) is the model input of the longer side when `input_length` is given — the CLI passes
`rewardsmith.models.encode` for a model, chat template and special tokens included, as training
sees it — and otherwise the raw prompt + response text, a few template tokens short.
`stats["tokens_counted"]` says which.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from rewardsmith.data.record import PreferencePair

# (conversation, response) -> tokens of the model input, untruncated
InputLength = Callable[[Sequence[dict], str], int]

PERCENTILES = (50, 90, 99)


def summarize(values: list[int]) -> dict[str, float]:
    """min / p50 / p90 / p99 / max / mean of a list of lengths (nearest-rank percentiles)."""
    if not values:
        return {}
    v = sorted(values)
    out: dict[str, float] = {"min": v[0]}
    for p in PERCENTILES:
        out[f"p{p}"] = v[min(len(v) - 1, max(0, -(-p * len(v) // 100) - 1))]
    out["max"] = v[-1]
    out["mean"] = round(sum(v) / len(v), 1)
    return out


def length_stats(pairs: list[PreferencePair], tokenizer: Any = None, max_length: int | None = None,
                 input_length: InputLength | None = None) -> dict[str, Any]:
    """Distributions of prompt / chosen / rejected lengths, and pairs over `max_length` tokens.

    A pair's length (`pair_tokens`) is its longer side: `input_length(conversation, response)`
    when given (the model's real input), else prompt (all messages) + response text tokens.
    `tokenizer` is a HF tokenizer (or any callable returning {"input_ids": [...]} for a list of texts).
    """
    prompts = ["".join(m["content"] for m in p.prompt) for p in pairs]
    out: dict[str, Any] = {
        "pairs": len(pairs),
        "prompt_chars": summarize([len(t) for t in prompts]),
        "chosen_chars": summarize([len(p.chosen) for p in pairs]),
        "rejected_chars": summarize([len(p.rejected) for p in pairs]),
        "prompt_turns": summarize([sum(1 for m in p.prompt if m["role"] == "user") for p in pairs]),
    }
    if tokenizer is None:
        return out
    prompt_tok = [sum(n) for n in _per_pair(_count(tokenizer, [m["content"] for p in pairs for m in p.prompt]),
                                            [len(p.prompt) for p in pairs])]
    rej_prompt_tok = [
        sum(_count(tokenizer, [m["content"] for m in p.rejected_prompt])) if p.rejected_prompt else prompt_tok[i]
        for i, p in enumerate(pairs)
    ]
    chosen_tok = _count(tokenizer, [p.chosen for p in pairs])
    rejected_tok = _count(tokenizer, [p.rejected for p in pairs])
    if input_length is None:
        pair_tok = [max(prompt_tok[i] + chosen_tok[i], rej_prompt_tok[i] + rejected_tok[i]) for i in range(len(pairs))]
        counted = "raw text: prompt + response, without the model's template and special tokens"
    else:
        pair_tok = _input_lengths(pairs, input_length)
        counted = "model input: template and special tokens included, before truncation"
    out.update(
        prompt_tokens=summarize(prompt_tok),
        chosen_tokens=summarize(chosen_tok),
        rejected_tokens=summarize(rejected_tok),
        pair_tokens=summarize(pair_tok),
        tokens_counted=counted,
    )
    if max_length is not None:
        out["max_length"] = max_length
        out["over_max_length"] = sum(1 for n in pair_tok if n > max_length)
    return out


def _input_lengths(pairs: list[PreferencePair], input_length: InputLength) -> list[int]:
    """The longer side's model-input length per pair; each distinct (conversation, response) once."""
    seen: dict[str, int] = {}

    def n(conversation: Sequence[dict], response: str) -> int:
        key = json.dumps([list(conversation), response], ensure_ascii=False, sort_keys=True)
        if key not in seen:
            seen[key] = input_length(conversation, response)
        return seen[key]

    return [max(n(*p.chosen_conversation()), n(*p.rejected_conversation())) for p in pairs]


def _count(tokenizer: Any, texts: list[str], batch: int = 1024) -> list[int]:
    """Token counts without special tokens. Each distinct text is tokenized once: judge-labelled
    sets pair the same answers many times (ja-mt-bench: 21,530 pairs from ~2,900 answers)."""
    unique = list(dict.fromkeys(texts))
    counts: dict[str, int] = {}
    for i in range(0, len(unique), batch):
        chunk = unique[i:i + batch]
        if callable(tokenizer):
            ids = tokenizer(chunk, add_special_tokens=False, return_attention_mask=False,
                            return_token_type_ids=False, verbose=False)["input_ids"]
        else:
            ids = [tokenizer.encode(t) for t in chunk]
        counts.update(zip(chunk, map(len, ids)))
    return [counts[t] for t in texts]


def _per_pair(counts: list[int], sizes: list[int]) -> list[list[int]]:
    out, i = [], 0
    for n in sizes:
        out.append(counts[i:i + n])
        i += n
    return out
