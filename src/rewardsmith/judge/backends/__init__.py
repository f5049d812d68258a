"""Judge/generator backends: chosen by name from one small table; a new backend is one new file.

A spec names a backend and its model, optionally followed by `?key=value&...` settings:
    openai:MODEL@URL          any OpenAI-compatible server (vLLM, llama.cpp, Ollama, hosted APIs)
    openai:MODEL              the URL comes from $OPENAI_BASE_URL (else the official endpoint)
    local:NAME_OR_PATH        in-process transformers generation (embedded name, folder or hub id)
    scripted:PATH             scripted replies from a JSON file, for tests
    ...?mode=logprobs         judge verdicts from token probabilities (default for local:)
    ...?mode=text             judge verdicts parsed from the reply text (default for openai: and scripted:)
The settings are not part of `model_id`: the cache keys a request by the model and the request's
content, and a logprob request differs from a text request in its content (`choices`).

Each backend module exposes `from_spec(rest, **options) -> Backend`. A backend has `model_id`
(what the cache key is built from: the model, never the URL, so one model behind two addresses
shares its cache) and `complete(requests)`, which yields `(index, Completion | RequestFailure)`
as each request finishes, so the caller can store every result the moment it exists.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from rewardsmith.errors import RewardsmithError

Message = dict[str, str]

# name -> module under rewardsmith.judge.backends; imported only when used (heavy deps stay lazy).
BACKENDS = {"openai": "openai_compat", "local": "local", "scripted": "scripted"}
MODES = ("logprobs", "text")
_SETTINGS = {"mode"}  # spec settings after "?"


@dataclass(frozen=True, slots=True)
class Request:
    """One chat completion request. `seed` tells samples of one prompt apart (and reproduces them)."""

    messages: tuple[tuple[str, str], ...]  # ((role, content), ...): hashable and order-preserving
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    # A logprob request: the reply continues from `prefix` (the assistant's first words) and the
    # answer is the next-token probability of each string in `choices`, not generated text.
    choices: tuple[str, ...] = ()
    prefix: str = ""

    @classmethod
    def chat(cls, messages: Sequence[Message], **params) -> "Request":
        return cls(messages=tuple((m["role"], m["content"]) for m in messages), **params)

    def message_dicts(self) -> list[Message]:
        return [{"role": r, "content": c} for r, c in self.messages]

    def key(self, model_id: str) -> str:
        """sha256 of the canonical request: identical content -> identical key, across runs."""
        body = {"model": model_id, **asdict(self)}
        if not self.choices:  # text requests keep the keys they had before logprob requests existed
            del body["choices"], body["prefix"]
        return hashlib.sha256(json.dumps(body, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Completion:
    """A backend's answer. For a logprob request `probs` maps each choice the backend could see
    (the full distribution locally, the top-k on a server) to its probability, unnormalised;
    a choice outside the top-k is absent, and `{}` means none was reachable."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    probs: dict[str, float] | None = None


@dataclass(frozen=True, slots=True)
class RequestFailure:
    """A request that failed after the backend's bounded retries; counted, never cached."""

    reason: str


class Backend(Protocol):
    model_id: str

    def complete(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion | RequestFailure]]: ...


def load_backend(spec: str, **options) -> Backend:
    """Build the backend a spec names. Raises RewardsmithError for an unknown or malformed spec."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest or kind not in BACKENDS:
        raise RewardsmithError(
            f"backend spec {spec!r}: expected KIND:MODEL with KIND one of {sorted(BACKENDS)}, e.g. "
            "'openai:smollm2@http://127.0.0.1:8080/v1' or 'local:smollm2-135m-instruct'"
        )
    rest, settings = _split_settings(spec, rest)
    module = importlib.import_module(f"{__name__}.{BACKENDS[kind]}")
    return module.from_spec(rest, **{**options, **settings})


def _split_settings(spec: str, rest: str) -> tuple[str, dict[str, str]]:
    """'NAME?mode=text' -> ('NAME', {'mode': 'text'}); validates keys and values."""
    rest, sep, query = rest.rpartition("?")
    if not sep:
        return query, {}
    settings = {}
    for part in query.split("&"):
        key, eq, value = part.partition("=")
        if not eq or key not in _SETTINGS:
            raise RewardsmithError(f"backend spec {spec!r}: setting {part!r} unknown; known: "
                                   f"{', '.join(f'{k}=...' for k in sorted(_SETTINGS))} (e.g. ?mode=text)")
        settings[key] = value
    if "mode" in settings:
        check_mode(settings["mode"], spec)
    return rest, settings


def check_mode(mode: str, where: str) -> str:
    if mode not in MODES:
        raise RewardsmithError(f"{where}: judge mode {mode!r} unknown; use one of {', '.join(MODES)} "
                               "(logprobs: verdicts from token probabilities; text: parsed from the reply)")
    return mode
