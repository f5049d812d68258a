"""The one record every stage shares: a preference pair.

Field names are final: readers produce them, filters, training, evaluation, the judge and the
server consume them. A conversation is a list of `{"role": ..., "content": ...}` dicts (roles
`system`, `user`, `assistant`), the shape chat templates take.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]  # {"role": "user" | "assistant" | "system", "content": str}
ROLES = ("system", "user", "assistant")


@dataclass(slots=True)
class PreferencePair:
    """One human or judge preference: `chosen` is the better answer to `prompt` than `rejected`.

    id:              stable identifier, unique within a source (e.g. "hh-rlhf/helpful-base/17").
    prompt:          the conversation so far, ending with a user turn.
    chosen:          the preferred assistant response (plain text).
    rejected:        the dispreferred assistant response.
    margin:          optional strength of the preference (e.g. |HelpSteer3 overall_preference|),
                     used by the margin Bradley-Terry loss; None when the source has none.
    language:        ISO 639-1 code ("ja", "ko", "en", ...) or None when unknown.
    source:          the dataset this came from ("hh-rlhf", "helpsteer3", ...).
    subset:          a part of the source ("harmless-base", "train", ...) or None.
    label_info:      the raw label information as published (winner, overall_preference,
                     judge verdicts, ...), kept so nothing about the label is lost.
    objective:       what the label judged: helpfulness, harmlessness, correctness or general
                     (data.objectives); None when the source does not say.
    labeler:         who judged: "human" or "llm-judge"; None when unknown.
    rejected_prompt: None when both answers reply to `prompt` (almost always). Set only when the
                     rejected answer replies to a different conversation (a few hh-rlhf pairs
                     differ before the last turn); then each side is scored as its own whole
                     conversation.
    """

    id: str
    prompt: list[Message]
    chosen: str
    rejected: str
    margin: float | None = None
    language: str | None = None
    source: str = ""
    subset: str | None = None
    label_info: dict[str, Any] = field(default_factory=dict)
    rejected_prompt: list[Message] | None = None
    objective: str | None = None
    labeler: str | None = None

    @property
    def is_single_turn(self) -> bool:
        """True when the prompt holds exactly one user turn (system messages do not count)."""
        return sum(1 for m in self.prompt if m["role"] == "user") == 1

    @property
    def prompt_key(self) -> str:
        """prompt_key(self.prompt): equal for every pair that answers the same conversation."""
        return prompt_key(self.prompt)

    def chosen_conversation(self) -> tuple[list[Message], str]:
        """(conversation, response) for the chosen side: what the input format encodes."""
        return self.prompt, self.chosen

    def rejected_conversation(self) -> tuple[list[Message], str]:
        """(conversation, response) for the rejected side."""
        return (self.rejected_prompt if self.rejected_prompt is not None else self.prompt), self.rejected

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["rejected_prompt"] is None:
            del d["rejected_prompt"]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreferencePair":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def prompt_key(prompt: list[Message]) -> str:
    """A short fingerprint of a conversation: which pairs share a prompt (what validation and
    evaluation intervals resample together) and whether a resumed run's input changed."""
    return hashlib.sha1(json.dumps(prompt, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:16]
