"""Loopback ports and multi-process launches for the tests' servers and process groups."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import warnings
from pathlib import Path


def free_port() -> int:
    """A port nothing listens on now. Tests that launch several processes pass one to torch's
    rendezvous: its default, 29500, is shared by every launch, so two xdist workers launching at
    once would collide there."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_distributed(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run of a multi-process launch (accelerate launch / torch.distributed.run), once
    more if a worker died of SIGABRT during it. Under the full suite on 2 cores a gloo worker has
    aborted (exit -6, before any result) now and then, in different tests, and never when those
    tests ran alone (docs/benchmarks.md, "The test suite"): an abort of the launch, not a wrong
    result. Whatever the second run returns is what the test asserts on. The aborted launch's whole
    output is kept in .pytest_cache/aborted-launches/ and named in a warning in pytest's summary,
    so the abort's own message is there to read the next time it happens (the cause is unknown)."""
    run = subprocess.run(argv, **kwargs)
    output = (run.stdout or "") + (run.stderr or "")  # the callers capture text
    if run.returncode != 0 and "exitcode: -6" in output:
        folder = Path(__file__).resolve().parents[1] / ".pytest_cache" / "aborted-launches"
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        log.write_text(f"{' '.join(map(str, argv))}\n\n{output}", encoding="utf-8")
        warnings.warn(f"a worker of {' '.join(map(str, argv[:4]))} aborted (SIGABRT); launched once more. "
                      f"The aborted launch's output: {log}")
        run = subprocess.run(argv, **kwargs)
    return run
