"""Dynamic batching: items of concurrent requests share forward passes on one worker thread.

The event loop never touches the model. Each request puts a job (its items and an asyncio
future) on a thread-safe queue; one worker thread owns the model and repeats:

    take every job that has arrived (an idle worker first waits up to `max_wait_ms` for company)
    -> encode their items (the library's one input format) into a pool of token sequences
    -> pick ONE forward batch from the pool: the oldest waiting sequence plus the sequences
       closest to it in length, as many as fit `token_budget` (rows x longest)
    -> score it; a job whose items are all scored gets its results.

This is continuous batching. Choosing each batch from everything in flight -- not from the
requests that happened to arrive together -- keeps rows of similar length together, so little
compute goes to padding, and anchoring on the oldest sequence means nothing waits forever.
Under load the pool holds every in-flight item, which is why served throughput approaches the
offline scorer's (benchmarks/serve_load.py measures it). A sequence's reward does not depend on
its batch-mates beyond floating-point noise (the scorer pools with the attention mask; tested
to 1e-5 in fp32).

Failures stay with their request: a job whose items cannot be encoded fails alone, a failing
forward pass fails only the jobs in that batch, a request whose caller went away (a client that
disconnected, a timeout) is forgotten without touching its batch-mates, and the worker runs until
`stop()`. Admission is bounded: a request that would take the items in flight past `max_pending`
is refused at once with `Overloaded` (the server's 503 + Retry-After) instead of queueing without
limit -- a queue longer than the worker can clear within the request timeout only holds memory.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# Every batch has a new (items, length) shape, and glibc's heap keeps the freed activations as free
# space between live blocks instead of returning it: a soak of mixed requests grew the server's
# RSS by ~220 MB/min (docs/benchmarks.md). malloc_trim(0) hands whole free pages back to the OS;
# it walks the heap in a few ms, so once every TRIM_EVERY forward passes costs well under 1%.
TRIM_EVERY = 16


def _malloc_trim():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        return None


_TRIM = _malloc_trim()


def release_free_heap() -> None:
    if _TRIM is not None:
        _TRIM(0)


_STOP = object()


class Overloaded(Exception):
    """Refused at admission: the request would take the items in flight past `max_pending`.
    `retry_after` is whole seconds until the items in flight now should be done."""

    def __init__(self, pending: int, max_pending: int, retry_after: int) -> None:
        super().__init__(f"{pending} items are in flight and the limit is {max_pending}")
        self.pending, self.max_pending, self.retry_after = pending, max_pending, retry_after


@dataclass(eq=False)
class _Job:
    items: Sequence[Any]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    rewards: list[float | None] = field(default_factory=list)
    missing: int = 0
    finished: bool = False  # set on the worker at once; the future itself is set later, on the loop

    def resolve(self, result: Any = None, error: BaseException | None = None) -> None:
        self.finished = True
        try:
            self.loop.call_soon_threadsafe(_set, self.future, result, error)
        except RuntimeError:  # the caller's event loop is closed: nobody is waiting any more
            pass


def _set(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the request timed out or its client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


@dataclass(eq=False)
class _Seq:
    """One encoded item waiting in the pool."""

    job: _Job
    index: int  # position in job.items
    ids: list[int]
    order: int  # arrival order; the smallest waiting one anchors the next batch


class Batcher:
    """Feeds a scorer from many coroutines through one worker thread.

    encode_fn:    items -> token id lists (one per item); called on the worker thread.
    score_ids_fn: token id lists -> one float each, in order; called on the worker thread.
    token_budget: rows x longest row per forward pass (a longer single sequence runs alone).
    max_wait_ms:  how long an idle worker waits for more requests before starting.
    max_pending:  items queued, pooled or being scored at most; a request past it raises Overloaded.
    on_batch:     called after each forward pass with (rows, requests, seconds) -- metrics.
    """

    def __init__(
        self,
        encode_fn: Callable[[Sequence[Any]], list[list[int]]],
        score_ids_fn: Callable[[list[list[int]]], list[float]],
        *,
        token_budget: int = 16384,
        max_wait_ms: float = 5.0,
        max_pending: int | None = None,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self._encode = encode_fn
        self._score_ids = score_ids_fn
        self._budget = token_budget
        self._max_wait = max_wait_ms / 1000.0
        self._max_pending = max_pending
        self._on_batch = on_batch
        self._items_per_second = 0.0  # moving average over forward passes, for Retry-After
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pool: list[tuple[int, int, _Seq]] = []  # (length, order, seq), sorted
        self._order = itertools.count()
        self._pending_items = 0  # items queued, pooled or being scored (for /health and /metrics)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def pending_items(self) -> int:
        return self._pending_items

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="rewardsmith-scorer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the forward pass in progress, fail every request still waiting, join the worker."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    async def score(self, items: Sequence[Any]) -> list[float]:
        """Rewards for `items`, in order, computed in batches shared with other requests."""
        if self._thread is None:
            raise RuntimeError("Batcher.start() was not called")
        pending = self._pending_items
        # A request alone is always admitted (the server keeps max_items <= max_pending), so a
        # limit below one request's size cannot refuse everything.
        if self._max_pending is not None and pending and pending + len(items) > self._max_pending:
            rate = self._items_per_second
            raise Overloaded(pending, self._max_pending,
                             retry_after=min(60, max(1, math.ceil(pending / rate))) if rate > 0 else 1)
        loop = asyncio.get_running_loop()
        job = _Job(items=items, future=loop.create_future(), loop=loop)
        self._add_pending(len(items))
        self._queue.put(job)
        return await job.future

    def _add_pending(self, n: int) -> None:
        with self._lock:
            self._pending_items += n

    # --- worker thread -------------------------------------------------------------------------

    def _run(self) -> None:
        steps = 0
        while not self._stopping:
            try:
                self._intake(block=not self._pool)
                if self._pool:
                    self._step()
                    steps += 1
                    if steps % TRIM_EVERY == 0:
                        release_free_heap()
            except BaseException:  # noqa: BLE001 -- the worker must outlive anything one batch does
                log.exception("scorer worker: unexpected failure")
        self._fail_all(RuntimeError("the server is shutting down"))

    def _intake(self, block: bool) -> None:
        """Move arrived jobs into the pool; an empty pool waits for one, then `max_wait_ms` more."""
        jobs: list[_Job] = []
        if block:
            first = self._queue.get()
            if first is _STOP:
                self._stopping = True
                return
            jobs.append(first)
            deadline = time.perf_counter() + self._max_wait
            while (remaining := deadline - time.perf_counter()) > 0:
                try:
                    job = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if job is _STOP:
                    self._stopping = True
                    break
                jobs.append(job)
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                self._stopping = True
                break
            jobs.append(job)
        for job in jobs:
            self._admit(job)

    def _admit(self, job: _Job) -> None:
        if job.future.done():  # timed out while queued
            self._add_pending(-len(job.items))
            return
        try:
            sequences = self._encode(job.items)
            if len(sequences) != len(job.items):
                raise RuntimeError(f"encode returned {len(sequences)} sequences for {len(job.items)} items")
        except Exception as error:  # this request's input alone is at fault
            self._add_pending(-len(job.items))
            job.resolve(error=error)
            return
        job.rewards = [None] * len(job.items)
        job.missing = len(job.items)
        for i, ids in enumerate(sequences):
            seq = _Seq(job, i, list(ids), next(self._order))
            bisect.insort(self._pool, (len(seq.ids), seq.order, seq), key=lambda t: (t[0], t[1]))
        if not sequences:
            job.resolve([])

    def _drop_dead(self) -> None:
        """Forget sequences of requests that timed out or failed: no compute is spent on them."""
        alive = [t for t in self._pool if not (t[2].job.finished or t[2].job.future.done())]
        if len(alive) != len(self._pool):
            self._add_pending(len(alive) - len(self._pool))
            self._pool = alive

    def _pick(self) -> list[int]:
        """Pool positions for the next forward pass: the oldest sequence and its nearest lengths,
        as many as fit the token budget. Passes are filled to the budget on purpose: on a CPU,
        small passes cost more per token than the padding they save (a padding cap lowered the
        served throughput under load; docs/benchmarks.md, serve_load)."""
        pool = self._pool
        anchor = min(range(len(pool)), key=lambda k: pool[k][1])
        length = pool[anchor][0]
        lo = hi = anchor  # the batch is the sorted slice pool[lo:hi + 1]; pool[hi] is its longest
        while True:
            rows = hi - lo + 2
            # Grow towards the neighbour closest in length to the anchor (least padding), if it fits.
            down = length - pool[lo - 1][0] if lo > 0 and rows * pool[hi][0] <= self._budget else None
            up = pool[hi + 1][0] - length if hi + 1 < len(pool) and rows * pool[hi + 1][0] <= self._budget else None
            if down is not None and (up is None or down <= up):
                lo -= 1
            elif up is not None:
                hi += 1
            else:
                return list(range(lo, hi + 1))

    def _step(self) -> None:
        self._drop_dead()
        if not self._pool:
            return
        picked = self._pick()
        batch = [self._pool[k][2] for k in picked]
        del self._pool[picked[0]: picked[-1] + 1]
        jobs = {id(s.job): s.job for s in batch}
        start = time.perf_counter()
        try:
            rewards = self._score_ids([s.ids for s in batch])
            if len(rewards) != len(batch):
                raise RuntimeError(f"scorer returned {len(rewards)} rewards for {len(batch)} sequences")
        except Exception as error:
            log.exception("forward pass failed; failing the %d request(s) in it", len(jobs))
            self._add_pending(-len(batch))
            for job in jobs.values():
                job.resolve(error=error)
            self._drop_dead()  # their other sequences are dead now
            return
        seconds = time.perf_counter() - start
        if seconds > 0:
            rate = len(batch) / seconds
            self._items_per_second = rate if not self._items_per_second else 0.8 * self._items_per_second + 0.2 * rate
        self._add_pending(-len(batch))
        for seq, reward in zip(batch, rewards):
            seq.job.rewards[seq.index] = float(reward)
            seq.job.missing -= 1
            if seq.job.missing == 0:
                seq.job.resolve(seq.job.rewards)
        if self._on_batch is not None:
            self._on_batch(len(batch), len(jobs), seconds)

    def _fail_all(self, error: BaseException) -> None:
        waiting = {id(t[2].job): t[2].job for t in self._pool}
        self._pool = []
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(job, _Job):
                waiting[id(job)] = job
        for job in waiting.values():
            job.resolve(error=error)
        with self._lock:
            self._pending_items = 0
