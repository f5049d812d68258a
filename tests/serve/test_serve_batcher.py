"""The continuous batcher on its own, with scripted encode/score functions (no model): shared
forward passes, order-matched results, length-aware batches, failure
isolation, a worker that outlives errors, and a clean stop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from rewardsmith.serve.batcher import Batcher, Overloaded


class Scripted:
    """An item is a string; its 'tokens' are its characters; its reward is len + 0.5.

    encode fails for "bad-input"; a forward pass containing "crash" fails. A gate can hold the
    first forward pass so that requests pile up behind it.
    """

    def __init__(self, hold_first: bool = False):
        self.gate = threading.Event()
        self.entered = threading.Event()  # a forward pass has started (and may be held at the gate)
        if not hold_first:
            self.gate.set()
        self.passes: list[list[str]] = []

    def encode(self, items):
        if "bad-input" in items:
            raise ValueError("cannot encode bad-input")
        return [[ord(c) for c in x] for x in items]

    def score_ids(self, sequences):
        self.entered.set()
        self.gate.wait(10)
        texts = ["".join(map(chr, s)) for s in sequences]
        self.passes.append(texts)
        if "crash" in texts:
            raise RuntimeError("forward pass crashed")
        return [len(s) + 0.5 for s in sequences]


def started(fn: Scripted, **kw) -> Batcher:
    b = Batcher(fn.encode, fn.score_ids, **{"max_wait_ms": 0, **kw})
    b.start()
    return b


async def behind_a_busy_worker(batcher: Batcher, fn: Scripted, requests: list[list[str]]):
    """Occupy the worker, queue `requests`, release; returns (first result, results in order)."""
    first = asyncio.ensure_future(batcher.score(["a"]))
    await asyncio.sleep(0.05)
    rest = [asyncio.ensure_future(batcher.score(r)) for r in requests]
    await asyncio.sleep(0.05)
    fn.gate.set()
    return await first, await asyncio.gather(*rest, return_exceptions=True)


def test_concurrent_requests_share_forward_passes_and_keep_their_order():
    fn = Scripted(hold_first=True)
    batcher = started(fn)
    requests = [["x" * i, "y" * (i + 1)] for i in range(1, 20)]
    first, results = asyncio.run(behind_a_busy_worker(batcher, fn, requests))
    batcher.stop()
    assert first == [1.5]
    assert results == [[i + 0.5, i + 1.5] for i in range(1, 20)]
    # Every sequence ran exactly once, in passes shared by several requests.
    passes = fn.passes[1:]
    assert sorted(x for p in passes for x in p) == sorted(x for r in requests for x in r)
    assert len(passes) < len(requests) and max(map(len, passes)) > 2
    assert batcher.pending_items == 0


def test_batches_start_at_the_oldest_sequence_and_take_its_nearest_lengths():
    fn = Scripted(hold_first=True)
    batcher = started(fn, token_budget=120)
    a, b1, b2, c, d = "A" * 50, "b" * 9, "B" * 51, "c" * 10, "d" * 2
    _, results = asyncio.run(behind_a_busy_worker(batcher, fn, [[a], [b1, b2], [c, d]]))
    batcher.stop()
    assert results == [[50.5], [9.5, 51.5], [10.5, 2.5]]
    # The oldest (a, 50 tokens) goes with its nearest length (51), and 3 rows x 51 would exceed
    # 120; then b1 (9) takes c (10) first, then d (2).
    assert [sorted(p) for p in fn.passes[1:]] == [[a, b2], [b1, c, d]]


def test_a_sequence_longer_than_the_budget_runs_alone():
    fn = Scripted()
    batcher = started(fn, token_budget=10)
    assert asyncio.run(batcher.score(["z" * 30, "q"])) == [30.5, 1.5]
    batcher.stop()
    assert sorted(map(len, fn.passes)) == [1, 1]


def test_failures_stay_with_their_request_and_the_worker_lives_on():
    fn = Scripted(hold_first=True)
    batcher = started(fn, token_budget=8)  # passes: [ok, yes], [fine], [crash]
    _, (good1, bad_input, crashed, good2) = asyncio.run(
        behind_a_busy_worker(batcher, fn, [["ok", "fine"], ["bad-input"], ["crash"], ["yes"]]))
    assert good1 == [2.5, 4.5]
    assert isinstance(bad_input, ValueError) and "bad-input" in str(bad_input)
    assert isinstance(crashed, RuntimeError) and "crashed" in str(crashed)
    assert good2 == [3.5]
    assert asyncio.run(batcher.score(["later"])) == [5.5]
    batcher.stop()
    assert batcher.pending_items == 0


def test_wrong_number_of_rewards_is_an_error_not_a_misalignment():
    batcher = Batcher(lambda items: [[1]] * len(items), lambda seqs: [1.0])
    batcher.start()
    with pytest.raises(RuntimeError, match="1 rewards for 2 sequences"):
        asyncio.run(batcher.score(["a", "b"]))
    batcher.stop()


def test_timed_out_requests_cost_nothing_and_stop_fails_the_rest():
    fn = Scripted(hold_first=True)
    batcher = started(fn)

    async def main():
        hold = asyncio.ensure_future(batcher.score(["a"]))
        await asyncio.sleep(0.05)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(batcher.score(["late"]), timeout=0.01)
        fn.gate.set()
        return await hold

    assert asyncio.run(main()) == [1.5]
    batcher.stop()
    assert all("late" not in p for p in fn.passes)  # its client had gone; no compute spent on it
    with pytest.raises(RuntimeError, match="start"):
        asyncio.run(batcher.score(["x"]))


def test_a_failed_request_spends_no_more_compute():
    fn = Scripted()
    batcher = started(fn, token_budget=8)
    long = "L" * 30  # cannot share a pass with "crash" under this budget, so it would run after it
    with pytest.raises(RuntimeError, match="crashed"):
        asyncio.run(batcher.score(["crash", long]))
    assert asyncio.run(batcher.score(["ok"])) == [2.5]
    batcher.stop()
    assert all(long not in p for p in fn.passes)
    assert batcher.pending_items == 0


def test_a_caller_gone_mid_pass_does_not_poison_its_batch_mates():
    fn = Scripted(hold_first=True)
    batcher = started(fn, max_wait_ms=200)  # the idle worker waits for company: both share one pass

    async def main():
        gone = asyncio.ensure_future(batcher.score(["aa", "bbb"]))
        stays = asyncio.ensure_future(batcher.score(["c"]))
        while not fn.entered.is_set():  # the shared pass is now in the forward pass, held
            await asyncio.sleep(0.01)
        gone.cancel()  # what a client disconnect does to its request's coroutine
        fn.gate.set()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await stays

    assert asyncio.run(main()) == [1.5]
    assert sorted(fn.passes[0]) == ["aa", "bbb", "c"]  # the cancelled request was in that very pass
    assert asyncio.run(batcher.score(["later"])) == [5.5]  # and the worker goes on
    batcher.stop()
    assert batcher.pending_items == 0


def test_admission_is_bounded_by_max_pending():
    fn = Scripted(hold_first=True)
    batcher = started(fn, max_pending=4)

    async def main():
        admitted = [asyncio.ensure_future(batcher.score(["a", "b"])) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded) as refused:
            await batcher.score(["c"])  # 4 in flight: one more is over the limit, refused at once
        fn.gate.set()
        return refused.value, await asyncio.gather(*admitted)

    refused, results = asyncio.run(main())
    assert results == [[1.5, 1.5]] * 2
    assert (refused.pending, refused.max_pending, refused.retry_after) == (4, 4, 1)
    assert asyncio.run(batcher.score(["a", "b", "c", "d"])) == [1.5] * 4  # drained: admitted again
    batcher.stop()
    assert batcher.pending_items == 0
