"""Filters named the way the model cards name them. Each is `(pairs, report) -> pairs` and reports
every pair it drops (reason + pair id), so a preset's counts can be checked against its card.

    single_turn          the prompt is one user message (HelpSteer3-ja: len(context) == 1)
    drop_ties            label_info["tie"] pairs go (HelpSteer3 overall_preference 0, arena ties)
    language_is("ja")    language == ja
    turn_is(1)           arena `turn` == 1
    subset_is("better")  one subset of a source (PKU-SafeRLHF better/safer, hh-rlhf subsets)
    dedupe               the same (prompt, chosen, rejected) once
    distinct_responses   chosen == rejected removed
    token_budget(tok, max_length, policy)   pairs over a token budget dropped or prompts cut from the left
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rewardsmith.data.common import normalize_language
from rewardsmith.data.record import Message, PreferencePair
from rewardsmith.data.report import DropReport
from rewardsmith.errors import RewardsmithError

Filter = Callable[[list[PreferencePair], DropReport], list[PreferencePair]]


def _keep_if(reason: str, keep: Callable[[PreferencePair], bool], name: str) -> Filter:
    def run(pairs: list[PreferencePair], report: DropReport) -> list[PreferencePair]:
        out = []
        for p in pairs:
            if keep(p):
                out.append(p)
            else:
                report.drop(reason, p.id)
        return out

    run.__name__ = name
    return run


# The cards' "single-turn" is HelpSteer3's len(context) == 1: the prompt is the one user message.
single_turn = _keep_if("not single-turn", lambda p: len(p.prompt) == 1 and p.rejected_prompt is None, "single_turn")
drop_ties = _keep_if("tie", lambda p: not p.label_info.get("tie"), "drop_ties")
distinct_responses = _keep_if("chosen == rejected", lambda p: p.chosen.strip() != p.rejected.strip(), "distinct_responses")


def language_is(language: str) -> Filter:
    code = normalize_language(language)
    return _keep_if(f"language != {code}", lambda p: (p.language or code) == code, f"language_is({code})")


def turn_is(turn: int) -> Filter:
    return _keep_if(f"turn != {turn}", lambda p: str(p.label_info.get("turn")) == str(turn), f"turn_is({turn})")


def subset_is(*subsets: str) -> Filter:
    wanted = set(subsets)
    return _keep_if(f"subset not in {sorted(wanted)}", lambda p: p.subset in wanted, f"subset_is({', '.join(subsets)})")


def dedupe(pairs: list[PreferencePair], report: DropReport) -> list[PreferencePair]:
    """Keep the first of pairs with the same prompt, chosen and rejected."""
    seen: set[str] = set()
    out = []
    for p in pairs:
        key = json.dumps([p.prompt, p.chosen, p.rejected, p.rejected_prompt], ensure_ascii=False)
        if key in seen:
            report.drop("duplicate", p.id)
        else:
            seen.add(key)
            out.append(p)
    return out


POLICIES = ("drop", "truncate_left")


def token_budget(tokenizer: Any, max_length: int, policy: str = "drop") -> Filter:
    """Keep pairs whose longer side fits `max_length` tokens (prompt + response, as plain text turns).

    policy "drop": over-long pairs are dropped ("over max_length").
    policy "truncate_left": whole earliest prompt messages are removed (then the first kept message
    is cut from the left) until both sides fit; a pair whose responses alone do not fit is dropped.
    The count is an estimate of the model input (the input format adds a few template tokens);
    `tokenizer` is any object with `__call__(text)["input_ids"]` or `encode(text)`, e.g. a HF tokenizer.
    """
    if policy not in POLICIES:
        raise RewardsmithError(f"over-length policy {policy!r} is not one of {POLICIES}")
    if max_length <= 0:
        raise RewardsmithError(f"max_length must be positive, got {max_length}")
    count = lambda text: n_tokens(tokenizer, text)  # noqa: E731 - one-line closure

    def run(pairs: list[PreferencePair], report: DropReport) -> list[PreferencePair]:
        out = []
        for p in pairs:
            lengths = [sum(count(m["content"]) for m in conv) + count(resp)
                       for conv, resp in (p.chosen_conversation(), p.rejected_conversation())]
            if max(lengths) <= max_length:
                out.append(p)
                continue
            if policy == "drop":
                report.drop(f"over max_length {max_length} tokens", p.id, f"{max(lengths)} tokens")
                continue
            room = max_length - max(count(p.chosen), count(p.rejected))
            prompt = _truncate_left(p.prompt, room, tokenizer)
            rejected_prompt = _truncate_left(p.rejected_prompt, room, tokenizer) if p.rejected_prompt else None
            if prompt is None or (p.rejected_prompt is not None and rejected_prompt is None):
                report.drop(f"responses alone over max_length {max_length} tokens", p.id)
                continue
            report.flag(f"prompt truncated from the left to fit {max_length} tokens", p.id)
            out.append(PreferencePair(**{**p.to_dict(), "prompt": prompt, "rejected_prompt": rejected_prompt}))
        return out

    run.__name__ = f"token_budget({max_length}, {policy})"
    return run


def n_tokens(tokenizer: Any, text: str) -> int:
    if hasattr(tokenizer, "encode"):
        try:
            return len(tokenizer.encode(text, add_special_tokens=False))
        except TypeError:  # tokenizers.Tokenizer / tiktoken-style encode(text)
            enc = tokenizer.encode(text)
            return len(getattr(enc, "ids", enc))
    return len(tokenizer(text)["input_ids"])


def _truncate_left(prompt: list[Message], room: int, tokenizer: Any) -> list[Message] | None:
    """The latest messages that fit in `room` tokens, the earliest kept one cut from the left; None if
    not even part of the last user turn fits."""
    kept: list[Message] = []
    for m in reversed(prompt):
        n = n_tokens(tokenizer, m["content"])
        if n <= room:
            kept.insert(0, m)
            room -= n
            continue
        if room > 0:
            ids = tokenizer.encode(m["content"], add_special_tokens=False)[-room:]
            kept.insert(0, {"role": m["role"], "content": tokenizer.decode(ids)})
        break
    return kept if kept and kept[-1]["role"] == "user" and kept[-1]["content"].strip() else None
