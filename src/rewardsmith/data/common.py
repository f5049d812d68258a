"""What every reader shares: the per-row context, the per-row failure, message helpers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rewardsmith.data.record import ROLES, Message, PreferencePair

# Natural-language names as datasets spell them -> ISO 639-1 (HelpSteer3 says "japanese").
LANGUAGE_NAMES = {
    "japanese": "ja", "korean": "ko", "english": "en", "chinese": "zh", "french": "fr", "german": "de",
    "spanish": "es", "russian": "ru", "italian": "it", "portuguese": "pt", "vietnamese": "vi",
    "dutch": "nl", "polish": "pl", "thai": "th", "indonesian": "id", "arabic": "ar", "hindi": "hi",
    "turkish": "tr", "ukrainian": "uk", "czech": "cs", "swedish": "sv", "greek": "el", "hebrew": "he",
}


def normalize_language(value: Any) -> str | None:
    """"japanese" / "Japanese" / "ja" / "ja-JP" -> "ja"; a programming language ("python") stays as given."""
    if value is None or value == "":
        return None
    v = str(value).strip().lower()
    if v in LANGUAGE_NAMES:
        return LANGUAGE_NAMES[v]
    if len(v) >= 2 and (len(v) == 2 or v[2] in "-_") and v[:2].isalpha():
        return v[:2]
    return v


class BadRow(Exception):
    """A row a reader cannot use: `reason` is the short key counted in the report, `detail` the why."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class RowContext:
    """Where a row comes from and the defaults a reader falls back to.

    where:    "file:line" for the report and errors.
    index:    running row number within the source (stable id when the row has none).
    source:   dataset name ("hh-rlhf", the folder name, the hub id, ...).
    subset:   default subset (file stem, split name) when the row has none.
    language: default language when the row has none.
    """

    where: str
    index: int
    source: str
    subset: str | None
    language: str | None

    def make_id(self, row: dict[str, Any] | None = None) -> str:
        if row is not None and row.get("id") not in (None, ""):
            return str(row["id"])
        return "/".join(str(x) for x in (self.source, self.subset, self.index) if x not in (None, ""))


def as_text(value: Any, field: str) -> str:
    """A response given as text (or as one {role, content} message, or a list ending in one)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "content" in value:
        return as_text(value["content"], field)
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return as_text(value[-1], field)
    raise BadRow("wrong type", f"{field} is {type(value).__name__}, expected text")


def as_messages(value: Any, field: str) -> list[Message]:
    """A conversation: text (one user turn) or a list of {role, content}; roles are checked."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise BadRow("wrong type", f"{field} is {type(value).__name__ if not isinstance(value, list) else 'empty list'}, "
                     "expected text or a list of {role, content}")
    out: list[Message] = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise BadRow("bad message", f"{field}[{i}] is not a {{role, content}} message")
        role = str(m["role"]).lower()
        role = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant"}.get(role, role)
        if role not in ROLES:
            raise BadRow("bad message", f"{field}[{i}].role is {m['role']!r}, expected one of {ROLES}")
        content = m["content"]
        if not isinstance(content, str):
            raise BadRow("bad message", f"{field}[{i}].content is {type(content).__name__}, expected text")
        out.append({"role": role, "content": content})
    return out


def check_prompt(prompt: list[Message], field: str = "prompt") -> list[Message]:
    """The prompt must end with a user turn (the record's contract)."""
    if not prompt or prompt[-1]["role"] != "user":
        last = prompt[-1]["role"] if prompt else "nothing"
        raise BadRow("prompt does not end with a user turn", f"{field} ends with {last}")
    return prompt


# A UTF-16 surrogate on its own: JSON lets "\ud800" be written as an escape, but it is half of a
# character, not text: UTF-8 cannot encode it, so writers and tokenizers fail on it later.
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_pair(pair: PreferencePair) -> None:
    """A pair that teaches nothing, or that later stages cannot encode, raises BadRow: an empty or
    whitespace-only side ("empty response"); the same answer on both sides ("chosen == rejected",
    compared stripped, as `filters.distinct_responses` does) to the same conversation -- public
    pairwise sets hold both; a lone surrogate anywhere in its text ("lone surrogate")."""
    for side, text in (("chosen", pair.chosen), ("rejected", pair.rejected)):
        if not text.strip():
            raise BadRow("empty response", f"{side} is {'empty' if not text else 'only whitespace'}")
    if pair.chosen.strip() == pair.rejected.strip() and pair.rejected_prompt in (None, pair.prompt):
        raise BadRow("chosen == rejected", f"both are {pair.chosen.strip()[:60]!r}")
    texts = {"chosen": pair.chosen, "rejected": pair.rejected}
    texts.update({f"prompt[{i}]": m["content"] for i, m in enumerate(pair.prompt)})
    texts.update({f"rejected_prompt[{i}]": m["content"] for i, m in enumerate(pair.rejected_prompt or [])})
    for field, text in texts.items():
        if m := _SURROGATE.search(text):
            raise BadRow("lone surrogate", f"{field} holds {m.group()!r} (a \\u escape for half of a UTF-16 "
                                           "pair, not a character); fix the program that wrote the file")


def row_prompt(row: dict[str, Any], answer: str) -> list[Message]:
    """The conversation a row's `answer` field replies to: its "messages" (chat layout) or "prompt"."""
    context = "messages" if "messages" in row else "prompt"
    if context not in row:
        raise BadRow("missing field", f"no 'prompt' (or 'messages') field for the {answer!r} to answer")
    return check_prompt(as_messages(row[context], context), context)


def response_item(row: dict[str, Any]) -> tuple[list[Message], str]:
    """(conversation, response) of a response row; raises BadRow naming the field at fault.

    {"prompt" or "messages": .., "response" or "completion" (TRL's name): ..}, or a chat transcript
    {"messages": [.., {"role": "assistant", ..}]} whose last assistant turn is the response."""
    field = next((f for f in ("response", "completion") if f in row), None)
    if field is None:
        conversation = as_messages(row["messages"], "messages") if "messages" in row else None
        if not conversation or conversation[-1]["role"] != "assistant":
            raise BadRow("missing field", "no 'response' (or 'completion', or 'chosen' and 'rejected') field, and "
                                          "no 'messages' that end with an assistant turn")
        return check_prompt(conversation[:-1], "messages[:-1]"), conversation[-1]["content"]
    return row_prompt(row, field), as_text(row[field], field)
