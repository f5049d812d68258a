"""Dynamic batching: concurrent requests become one scorer call on one worker thread.

The event loop never touches the model. Each request puts a job (its items and an asyncio
future) on a thread-safe queue; one worker thread owns the model and repeats:

    take the oldest job -> for up to `max_wait_ms`, take whatever else arrives (until
    `max_batch_items`) -> score(all items) in one call -> hand each job its slice of the results.

While the worker is busy with one batch, the next requests pile up in the queue, so under load
the batches grow by themselves and the wait is only paid when the server is idle. The scorer
then cuts each call into length-sorted, token-budgeted forward passes, which is what makes served
throughput approach offline throughput.

A batch that fails is retried job by job, so one bad request fails alone; the worker only stops
when `stop()` is called.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

_STOP = object()


@dataclass
class _Job:
    items: Sequence[Any]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)


def _resolve(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # the request timed out or its client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Batcher:
    """Feeds `score_fn(items) -> list[float]` from many coroutines, one call at a time.

    score_fn:        called on the worker thread only; must return one float per item, in order.
    max_wait_ms:     how long an idle worker waits for company before scoring a lone job.
    max_batch_items: stop gathering once this many items are waiting (a single larger job is
                     still taken whole).
    on_batch:        called after each scorer call with (items, jobs, seconds) -- metrics.
    """

    def __init__(
        self,
        score_fn: Callable[[list[Any]], list[float]],
        *,
        max_wait_ms: float = 5.0,
        max_batch_items: int = 256,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self._score_fn = score_fn
        self._max_wait = max_wait_ms / 1000.0
        self._max_items = max_batch_items
        self._on_batch = on_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._carry: _Job | None = None  # a job taken while gathering that did not fit the batch
        self._pending_items = 0  # items queued or being scored (read by /health and /metrics)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def pending_items(self) -> int:
        return self._pending_items

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="rewardsmith-scorer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in progress, fail what is still queued, and join the worker."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    async def score(self, items: Sequence[Any]) -> list[float]:
        """Scores for `items`, in order, computed together with whatever else is waiting."""
        if self._thread is None:
            raise RuntimeError("Batcher.start() was not called")
        loop = asyncio.get_running_loop()
        job = _Job(items=items, future=loop.create_future(), loop=loop)
        self._add_pending(len(items))
        self._queue.put(job)
        return await job.future

    def _add_pending(self, n: int) -> None:
        with self._lock:
            self._pending_items += n

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """The batch starting with `first`; second value True when stop() was requested."""
        jobs, n = [first], len(first.items)
        deadline = time.perf_counter() + self._max_wait
        while n < self._max_items:
            try:
                remaining = deadline - time.perf_counter()
                nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                return jobs, True
            if n + len(nxt.items) > self._max_items:
                self._carry = nxt
                break
            jobs.append(nxt)
            n += len(nxt.items)
        return jobs, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._carry if self._carry is not None else self._queue.get()
            self._carry = None
            if first is _STOP:
                break
            jobs, stopping = self._gather(first)
            live = [j for j in jobs if not j.future.done()]  # skip requests that already timed out
            try:
                self._score_jobs(live)
            except BaseException:  # noqa: BLE001 -- the worker must outlive any one batch
                log.exception("scorer worker: unexpected failure")
            self._add_pending(-sum(len(j.items) for j in jobs))
        # Drain: requests still queued at shutdown get an error instead of hanging.
        leftovers = [self._carry] if isinstance(self._carry, _Job) else []
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(job, _Job):
                leftovers.append(job)
        for job in leftovers:
            job.loop.call_soon_threadsafe(_resolve, job.future, None, RuntimeError("the server is shutting down"))

    def _score_jobs(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        items = [item for job in jobs for item in job.items]
        start = time.perf_counter()
        try:
            scores = self._score_fn(items)
        except Exception as error:
            if len(jobs) == 1:
                jobs[0].loop.call_soon_threadsafe(_resolve, jobs[0].future, None, error)
                return
            # One request's input broke the whole batch: score each alone so only it fails.
            for job in jobs:
                self._score_jobs([job])
            return
        seconds = time.perf_counter() - start
        if len(scores) != len(items):
            error = RuntimeError(f"scorer returned {len(scores)} scores for {len(items)} items")
            for job in jobs:
                job.loop.call_soon_threadsafe(_resolve, job.future, None, error)
            return
        offset = 0
        for job in jobs:
            part = [float(s) for s in scores[offset: offset + len(job.items)]]
            offset += len(job.items)
            job.loop.call_soon_threadsafe(_resolve, job.future, part)
        if self._on_batch is not None:
            self._on_batch(len(items), len(jobs), seconds)

