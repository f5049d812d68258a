"""Scripted-backend fixtures: a judge whose replies depend on the answers' content, like a real one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# Label lines of the judge prompts in each language (see rewardsmith.judge.prompts.PAIRWISE).
A_LABEL = {"en": "Answer A: ", "ja": "回答A: ", "ko": "답변 A: "}
B_LABEL = {"en": "Answer B: ", "ja": "回答B: ", "ko": "답변 B: "}


def write_script(path: Path, rules: list[dict], default: str | None = "answer {seed}", **extra) -> str:
    path.write_text(json.dumps({"rules": rules, "default": default, **extra}, ensure_ascii=False))
    return f"scripted:{path}"


def prefer_rules(text: str) -> list[dict]:
    """Rules for a consistent judge: the answer starting with `text` wins in either position."""
    rules = []
    for lang in A_LABEL:
        rules.append({"contains": A_LABEL[lang] + text, "reply": "[[A]] it is better"})
        rules.append({"contains": B_LABEL[lang] + text, "reply": "[[B]]"})
    return rules


@pytest.fixture
def scripted(tmp_path):
    """`scripted(rules, default=..., **extra) -> spec`: a scripted backend spec in tmp_path."""
    counter = iter(range(1000))

    def make(rules: list[dict], default: str | None = "answer {seed}", **extra) -> str:
        return write_script(tmp_path / f"script{next(counter)}.json", rules, default, **extra)

    return make
