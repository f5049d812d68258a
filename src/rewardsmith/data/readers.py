"""Readers for the generic TRL-style layout (and the project's own JSONL) and for hh-rlhf transcripts.

A reader is `read(row, ctx, report) -> Iterator[PreferencePair]`; it raises `BadRow` for a row it
cannot use (the loader counts it by reason) and may `report.flag(...)` pairs it keeps but that a user
should know about. Named dataset formats live in named.py; the table of formats in formats.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from rewardsmith.data.common import (
    BadRow, RowContext, as_messages, as_text, check_prompt, normalize_language,
)
from rewardsmith.data.objectives import LABELERS, OBJECTIVES
from rewardsmith.data.record import Message, PreferencePair
from rewardsmith.data.report import DropReport

# Columns the generic reader understands; anything else in a row goes to label_info.
PAIR_FIELDS = ("id", "prompt", "chosen", "rejected", "margin", "language", "source", "subset",
               "label_info", "rejected_prompt", "objective", "labeler")


def read_preference(row: dict[str, Any], ctx: RowContext, report: DropReport) -> Iterator[PreferencePair]:
    """TRL's preference layout, which the project's own JSONL is a case of.

    - explicit prompt: `prompt` is text or messages; `chosen` / `rejected` are text or
      `[{"role": "assistant", ...}]`.
    - implicit prompt: no `prompt`; `chosen` / `rejected` are whole conversations (messages) whose
      shared prefix is the prompt, or plain texts whose shared character prefix is (TRL's
      `extract_prompt` rule). UltraFeedback-binarized gives both a text prompt and whole
      conversations: the conversations win, they hold the same user turn.
    Extra columns (score_chosen, ...) and `label_info` are kept in `label_info`.
    """
    chosen_raw, rejected_raw = row.get("chosen"), row.get("rejected")
    if chosen_raw is None or rejected_raw is None:
        raise BadRow("missing field", "chosen is missing" if chosen_raw is None else "rejected is missing")
    rejected_prompt = None
    if _is_conversation(chosen_raw) and _is_conversation(rejected_raw) and (
        len(chosen_raw) > 1 or len(rejected_raw) > 1 or row.get("prompt") in (None, "")
    ):
        c, r = as_messages(chosen_raw, "chosen"), as_messages(rejected_raw, "rejected")
        if row.get("prompt") not in (None, "") and c[0]["role"] == "assistant":
            # explicit prompt + multi-message answers: the answer is the last message
            prompt = as_messages(row["prompt"], "prompt")
        else:
            prompt, rejected_prompt = _split_conversations(c, r, ctx, report)
        chosen, rejected = _last_assistant(c, "chosen"), _last_assistant(r, "rejected")
    elif row.get("prompt") not in (None, ""):
        prompt = as_messages(row["prompt"], "prompt")
        chosen, rejected = as_text(chosen_raw, "chosen"), as_text(rejected_raw, "rejected")
        if row.get("rejected_prompt"):
            rejected_prompt = check_prompt(as_messages(row["rejected_prompt"], "rejected_prompt"), "rejected_prompt")
    else:
        chosen, rejected = as_text(chosen_raw, "chosen"), as_text(rejected_raw, "rejected")
        n = _shared_prefix_len(chosen, rejected)
        if n == 0:
            raise BadRow("no prompt", "no prompt column and chosen/rejected share no prefix to take it from")
        prompt = [{"role": "user", "content": chosen[:n]}]
        chosen, rejected = chosen[n:], rejected[n:]
    check_prompt(prompt)
    label_info = row.get("label_info")
    if isinstance(label_info, str) and label_info.startswith("{"):
        label_info = _json_object(label_info)  # our Parquet stores it as a JSON string (see save.py)
    label_info = dict(label_info) if isinstance(label_info, dict) else {}
    for k, v in row.items():
        # UltraFeedback-binarized repeats the chosen conversation as `messages`: not label information.
        if k not in PAIR_FIELDS and not k.startswith("__") and not (k == "messages" and v == chosen_raw):
            label_info.setdefault(k, v)
    yield PreferencePair(
        id=ctx.make_id(row),
        prompt=prompt,
        chosen=chosen,
        rejected=rejected,
        margin=_margin(row.get("margin")),
        language=normalize_language(row.get("language")) or ctx.language,
        source=str(row.get("source") or ctx.source),
        # An explicit "subset": null (our own JSONL) stays None; without the column, split or file name.
        subset=(str(row["subset"]) if row["subset"] not in (None, "") else None) if "subset" in row
        else (row.get("__split__") or ctx.subset),
        label_info=label_info,
        rejected_prompt=rejected_prompt,
        objective=_known(row.get("objective"), OBJECTIVES, "objective"),
        labeler=_known(row.get("labeler"), LABELERS, "labeler"),
    )


def _known(value: Any, allowed: tuple[str, ...], field: str) -> str | None:
    """A row's objective / labeler: one of `allowed`, or None when the row has none."""
    if value in (None, ""):
        return None
    if value not in allowed:
        raise BadRow("value out of range", f"{field} is {value!r}, expected one of {', '.join(allowed)}")
    return str(value)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise BadRow("wrong type", "label_info is text that is not a JSON object") from None
    return value if isinstance(value, dict) else {}


def _is_conversation(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) for m in value)


def _last_assistant(conv: list[Message], field: str) -> str:
    if conv[-1]["role"] != "assistant":
        raise BadRow("response is not an assistant turn", f"{field} ends with a {conv[-1]['role']} turn")
    return conv[-1]["content"]


def _split_conversations(
    c: list[Message], r: list[Message], ctx: RowContext, report: DropReport
) -> tuple[list[Message], list[Message] | None]:
    """(prompt, rejected_prompt) from two whole conversations that should share all but the last turn."""
    if c[:-1] == r[:-1]:
        return check_prompt(c[:-1]), None
    # They differ earlier: each side is its own conversation (the record's rejected_prompt).
    n = next(i for i, (a, b) in enumerate(zip(c[:-1], r[:-1], strict=False)) if a != b) if any(
        a != b for a, b in zip(c[:-1], r[:-1], strict=False)) else min(len(c), len(r)) - 1
    report.flag("conversations differ before the last turn (scored as whole transcripts)", ctx.where,
                f"first difference at message {n}")
    return check_prompt(c[:-1]), check_prompt(r[:-1], "rejected_prompt")


def _shared_prefix_len(a: str, b: str) -> int:
    """TRL `extract_prompt` for text: the common prefix, minus a trailing space it would swallow."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    if n < min(len(a), len(b)) and n > 0 and a[n - 1] == " ":
        n -= 1
    return n


def _margin(value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadRow("wrong type", f"margin is {value!r}, expected a number") from None


# --- Anthropic hh-rlhf --------------------------------------------------------------------------

# "\n\nHuman: ..." / "\n\nAssistant: ..." — the markers Anthropic's transcripts use.
_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ ]?")
_HH_ROLE = {"Human": "user", "Assistant": "assistant"}


def read_hh_rlhf(row: dict[str, Any], ctx: RowContext, report: DropReport) -> Iterator[PreferencePair]:
    """`{"chosen": transcript, "rejected": transcript}` -> prompt messages + the two last answers.

    The shared context runs to the first "Assistant:" after the last Human turn of one side, when
    the other side starts with exactly that text; the answers are the raw text after it. So a
    model's fake "\n\nHuman:" turn inside an answer, or two Assistant turns in a row, stay in the
    answer (as TRL's hh recipe keeps them) and are flagged. Pairs whose contexts really differ keep
    both conversations (`rejected_prompt`) and are flagged.
    """
    chosen_t, rejected_t = row.get("chosen"), row.get("rejected")
    if not isinstance(chosen_t, str) or not isinstance(rejected_t, str):
        raise BadRow("wrong type", "hh-rlhf chosen/rejected must be transcript text")
    c_cut, r_cut = _hh_last_answer_start(chosen_t, "chosen"), _hh_last_answer_start(rejected_t, "rejected")
    rejected_prompt = None
    if rejected_t.startswith(chosen_t[: c_cut[1]]) or chosen_t.startswith(rejected_t[: r_cut[1]]):
        start, cut = c_cut if rejected_t.startswith(chosen_t[: c_cut[1]]) else r_cut
        prompt = _hh_messages(chosen_t[:start])
        chosen, rejected = chosen_t[cut:].strip(), rejected_t[cut:].strip()
    else:
        prompt, chosen = _hh_messages(chosen_t[: c_cut[0]]), chosen_t[c_cut[1]:].strip()
        rejected_prompt, rejected = _hh_messages(rejected_t[: r_cut[0]]), rejected_t[r_cut[1]:].strip()
        if rejected_prompt == prompt:
            rejected_prompt = None  # they differ only in whitespace
        else:
            report.flag("conversations differ before the last turn (scored as whole transcripts)", ctx.where)
    if _HH_TURN.search(chosen) or _HH_TURN.search(rejected):
        report.flag("answer holds a further 'Human:'/'Assistant:' turn (kept as answer text)", ctx.where)
    yield PreferencePair(
        id=ctx.make_id(row),
        prompt=check_prompt(prompt),
        chosen=chosen,
        rejected=rejected,
        language=normalize_language(row.get("language")) or ctx.language or "en",
        source=ctx.source,
        subset=ctx.subset,
        label_info={"label": "crowdworker pairwise choice"},
        rejected_prompt=check_prompt(rejected_prompt, "rejected_prompt") if rejected_prompt else None,
    )


def _hh_last_answer_start(text: str, field: str) -> tuple[int, int]:
    """(start, end) of the "\n\nAssistant:" marker that opens the answer to the last Human turn."""
    marks = list(_HH_TURN.finditer(text))
    if not marks or text[: marks[0].start()].strip() or marks[0].group(1) != "Human":
        raise BadRow("not an hh-rlhf transcript", f"{field} does not start with a 'Human:' turn")
    for prev, m in zip(reversed(marks[:-1]), reversed(marks[1:]), strict=True):
        if prev.group(1) == "Human" and m.group(1) == "Assistant":
            return m.start(), m.end()
    raise BadRow("no answer after the last Human turn", f"{field} has no Assistant turn after a Human turn")


def _hh_messages(text: str) -> list[Message]:
    """"\n\nHuman: hi\n\nAssistant: hello\n\nHuman: and?" -> [{user: hi}, {assistant: hello}, {user: and?}]."""
    parts = _HH_TURN.split(text)
    return [{"role": _HH_ROLE[parts[i]], "content": parts[i + 1].strip()} for i in range(1, len(parts), 2)]
