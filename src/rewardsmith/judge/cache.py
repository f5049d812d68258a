"""A disk cache of request results keyed by content, and the client that consults it first.

Storage is one SQLite file in WAL mode, one row per finished request, committed as soon as the
result arrives: a run killed with SIGKILL loses at most the requests in flight, and a restart
finds every finished one here. Failed requests are not stored (they are retried by the next
run, a bounded number of times per run); a reply that parses to no verdict IS stored, because
the backend answered and asking again would only spend the same tokens on the same answer.
Only the calling thread touches the database; backends may use threads internally.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rewardsmith.judge.backends import Backend, Completion, Request, RequestFailure

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created REAL NOT NULL,
    probs TEXT
)
"""


class Cache:
    """`get(key) -> Completion | None`, `put(key, model, request, completion)`; survives SIGKILL."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        # WAL + synchronous=NORMAL: a committed row survives a killed process (not a power cut).
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(results)")}
        if "probs" not in columns:  # a cache written before logprob verdicts: its rows stay valid
            self._db.execute("ALTER TABLE results ADD COLUMN probs TEXT")
        self._db.commit()

    def get(self, key: str) -> Completion | None:
        row = self._db.execute(
            "SELECT text, prompt_tokens, completion_tokens, probs FROM results WHERE key = ?", (key,)
        ).fetchone()
        if not row:
            return None
        return Completion(row[0], row[1], row[2], None if row[3] is None else json.loads(row[3]))

    def put(self, key: str, model: str, request: Request, completion: Completion) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO results (key, model, request, text, prompt_tokens, completion_tokens, "
            "created, probs) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, model, json.dumps(asdict(request), ensure_ascii=False), completion.text,
             completion.prompt_tokens, completion.completion_tokens, time.time(),
             None if completion.probs is None else json.dumps(completion.probs)),
        )
        self._db.commit()

    def keys(self) -> set[str]:
        return {k for (k,) in self._db.execute("SELECT key FROM results")}

    def close(self) -> None:
        self._db.close()


@dataclass
class Counters:
    """What a run cost: requests sent to a backend, answered from cache, failed; tokens; seconds."""

    sent: int = 0
    cached: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class Client:
    """A backend behind the cache: `run(requests)` returns results in request order.

    Identical requests in one call are sent once. Every new completion is written to the cache
    before the next result is read, so nothing finished is ever asked for twice.
    """

    def __init__(self, backend: Backend, cache: Cache | None = None):
        self.backend = backend
        self.cache = cache
        self.counters = Counters()

    @property
    def model_id(self) -> str:
        return self.backend.model_id

    @property
    def mode(self) -> str:
        """How this backend's judge verdicts are read: "logprobs" or "text" (see judge.core)."""
        return getattr(self.backend, "mode", "text")

    def run(self, requests: Sequence[Request]) -> list[Completion | RequestFailure]:
        start = time.perf_counter()
        keys = [r.key(self.model_id) for r in requests]
        results: dict[str, Completion | RequestFailure] = {}
        todo: dict[str, Request] = {}
        for key, request in zip(keys, requests):
            if key in results or key in todo:
                continue
            hit = self.cache.get(key) if self.cache else None
            if hit is not None:
                results[key] = hit
                self.counters.cached += 1
            else:
                todo[key] = request
        todo_keys = list(todo)
        if todo_keys:
            for i, result in self.backend.complete([todo[k] for k in todo_keys]):
                key = todo_keys[i]
                results[key] = result
                self.counters.sent += 1
                if isinstance(result, RequestFailure):
                    self.counters.failed += 1
                    continue
                self.counters.prompt_tokens += result.prompt_tokens
                self.counters.completion_tokens += result.completion_tokens
                if self.cache:
                    self.cache.put(key, self.model_id, todo[key], result)
        self.counters.seconds += time.perf_counter() - start
        missing = [k for k in todo_keys if k not in results]
        assert not missing, f"backend {self.model_id} returned no result for {len(missing)} requests"
        return [results[k] for k in keys]
