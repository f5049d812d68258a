"""A fake backend fed scripted replies, reached through the real backend table (`scripted:PATH`).

PATH is a JSON file:
    {"rules": [{"contains": "[Answer A]\\nParis", "reply": "[[A]] correct capital"},
               {"contains": "fail me", "fail": "HTTP 500"}],
     "default": "answer {seed}",        # reply when no rule matches; {seed} -> the request seed
     "delay": 0.0,                      # seconds per request, so tests can kill a run midway
     "log": "calls.jsonl",              # optional: one line per request served (relative to PATH)
     "mode": "text"}                    # judge mode ("text" or "logprobs"; `?mode=` overrides)
A logprob request (`Request.choices`) is answered by a rule's "probs", e.g.
    {"contains": "Answer A: Paris", "probs": {"A": 0.7, "B": 0.2}}   (absent choices: not in the top-k)
and a rule without "probs" answers it with `probs={}` (no choice reachable).
A rule matches when its `contains` occurs in the concatenated message contents; the first match
wins. `fail` makes the request fail with that reason (to test failure counting). Replies are a
pure function of the request, like a greedy model, so caching behaves as with a real one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from rewardsmith.errors import RewardsmithError
from rewardsmith.judge.backends import Completion, Request, RequestFailure, check_mode


class ScriptedBackend:
    def __init__(self, rules: list[dict], default: str | None = None, delay: float = 0.0,
                 log: str | Path | None = None, model_id: str = "scripted", mode: str = "text"):
        self.rules, self.default, self.delay = rules, default, delay
        self.log = Path(log) if log else None
        self.model_id = model_id
        self.mode = check_mode(mode, model_id)

    def _reply(self, request: Request) -> Completion | RequestFailure:
        text = "\n".join(c for _, c in request.messages)
        for rule in self.rules:
            if rule.get("contains", "") in text:
                if "fail" in rule:
                    return RequestFailure(str(rule["fail"]))
                if request.choices:
                    probs = {c: float(p) for c, p in rule.get("probs", {}).items() if c in request.choices}
                    top = max(probs, key=probs.get) if probs else ""
                    return Completion(top, prompt_tokens=len(text.split()), probs=probs)
                return self._completion(rule["reply"], request, text)
        if self.default is None:
            return RequestFailure("scripted: no rule matches and no default reply")
        if request.choices:
            return Completion(self.default, prompt_tokens=len(text.split()), probs={})
        return self._completion(self.default, request, text)

    @staticmethod
    def _completion(reply: str, request: Request, text: str) -> Completion:
        out = reply.replace("{seed}", str(request.seed))
        return Completion(out, prompt_tokens=len(text.split()), completion_tokens=len(out.split()))

    def complete(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion | RequestFailure]]:
        for i, request in enumerate(requests):
            if self.delay:
                time.sleep(self.delay)
            result = self._reply(request)
            if self.log:
                with self.log.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"key": request.key(self.model_id)}) + "\n")
            yield i, result


def from_spec(rest: str, **options) -> ScriptedBackend:
    path = Path(rest)
    try:
        script = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RewardsmithError(f"scripted backend: {path} does not exist; give scripted:PATH to a JSON script")
    except json.JSONDecodeError as e:
        raise RewardsmithError(f"scripted backend: {path} line {e.lineno}: invalid JSON ({e.msg})")
    log = script.get("log")
    return ScriptedBackend(
        rules=script.get("rules", []),
        default=script.get("default"),
        delay=float(script.get("delay", 0.0)),
        log=(path.parent / log) if log else None,
        model_id=script.get("model_id", f"scripted:{path.name}"),
        mode=options.get("mode") or script.get("mode", "text"),
    )
