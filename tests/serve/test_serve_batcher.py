"""The dynamic batcher on its own, with a scripted score function (no model): merging, order,
failure isolation, a worker that outlives errors, and a clean stop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from rewardsmith.serve.batcher import Batcher


class Recorder:
    """score_fn that returns len(item) + 0.5 and remembers every call; 'boom' items raise."""

    def __init__(self, gate: threading.Event | None = None):
        self.calls: list[list[str]] = []
        self.gate = gate

    def __call__(self, items):
        if self.gate is not None:
            self.gate.wait(10)
        self.calls.append(list(items))
        if any(x == "boom" for x in items):
            raise ValueError("boom item")
        return [len(x) + 0.5 for x in items]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_merge_and_keep_their_order():
    fn = Recorder(gate=threading.Event())
    batcher = Batcher(fn, max_wait_ms=0, max_batch_items=1000)
    batcher.start()

    async def main():
        first = asyncio.ensure_future(batcher.score(["a"]))  # occupies the worker (held by the gate)
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher.score(["x" * i, "y" * (i + 1)])) for i in range(1, 20)]
        await asyncio.sleep(0.05)
        fn.gate.set()
        return await first, await asyncio.gather(*rest)

    first, rest = run(main())
    batcher.stop()
    assert first == [1.5]
    assert rest == [[i + 0.5, i + 1.5] for i in range(1, 20)]
    # The 19 requests queued behind the busy worker went into ONE scorer call, in arrival order.
    assert len(fn.calls) == 2 and len(fn.calls[1]) == 38
    assert fn.calls[1][:4] == ["x", "yy", "xx", "yyy"]


def test_batch_cap_splits_but_takes_a_large_job_whole():
    fn = Recorder(gate=threading.Event())
    batcher = Batcher(fn, max_wait_ms=0, max_batch_items=4)
    batcher.start()

    async def main():
        hold = asyncio.ensure_future(batcher.score(["a"]))
        await asyncio.sleep(0.05)
        jobs = [asyncio.ensure_future(batcher.score(["bb"] * n)) for n in (3, 3, 6)]
        await asyncio.sleep(0.05)
        fn.gate.set()
        return await hold, await asyncio.gather(*jobs)

    _, results = run(main())
    batcher.stop()
    assert results == [[2.5] * 3, [2.5] * 3, [2.5] * 6]
    assert [len(c) for c in fn.calls] == [1, 3, 3, 6]


def test_a_failing_request_fails_alone_and_the_worker_lives_on():
    fn = Recorder(gate=threading.Event())
    batcher = Batcher(fn, max_wait_ms=0)
    batcher.start()

    async def main():
        hold = asyncio.ensure_future(batcher.score(["a"]))
        await asyncio.sleep(0.05)
        good1 = asyncio.ensure_future(batcher.score(["ok", "fine"]))
        bad = asyncio.ensure_future(batcher.score(["boom"]))
        good2 = asyncio.ensure_future(batcher.score(["yes"]))
        await asyncio.sleep(0.05)
        fn.gate.set()
        await hold
        results = await asyncio.gather(good1, bad, good2, return_exceptions=True)
        after = await batcher.score(["later"])
        return results, after

    (good1, bad, good2), after = run(main())
    batcher.stop()
    assert good1 == [2.5, 4.5] and good2 == [3.5] and after == [5.5]
    assert isinstance(bad, ValueError) and "boom" in str(bad)
    assert batcher.pending_items == 0


def test_wrong_number_of_scores_is_an_error_not_a_misalignment():
    batcher = Batcher(lambda items: [1.0], max_wait_ms=0)
    batcher.start()
    with pytest.raises(RuntimeError, match="1 scores for 2 items"):
        run(batcher.score(["a", "b"]))
    batcher.stop()


def test_timed_out_requests_are_skipped_and_stop_fails_the_queue():
    fn = Recorder(gate=threading.Event())
    batcher = Batcher(fn, max_wait_ms=0)
    batcher.start()

    async def main():
        hold = asyncio.ensure_future(batcher.score(["a"]))
        await asyncio.sleep(0.05)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(batcher.score(["late"]), timeout=0.01)
        fn.gate.set()
        return await hold

    assert run(main()) == [1.5]
    batcher.stop()
    assert ["late"] not in fn.calls  # its client had gone; no work was spent on it
    with pytest.raises(RuntimeError, match="start"):
        run(batcher.score(["x"]))
