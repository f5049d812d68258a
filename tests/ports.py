"""Loopback ports and multi-process launches for the tests' servers and process groups."""

from __future__ import annotations

import socket
import subprocess
import sys


def free_port() -> int:
    """A port nothing listens on now. Tests that launch several processes pass one to torch's
    rendezvous: its default, 29500, is shared by every launch, so two xdist workers launching at
    once collide there (the likely cause of a 2-process gloo test aborting with SIGABRT once in
    three `make test` runs; it did not recur in six runs of those tests alone)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_distributed(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run of a multi-process launch (accelerate launch / torch.distributed.run), once
    more if a worker died of SIGABRT during it. Under the full suite on 2 cores a gloo worker
    aborted (exit -6, before any result) in 2 of 5 `make test` runs on 2026-12-07, in different
    tests, and never in 10 runs of those tests alone: an abort of the launch, not a wrong result.
    Whatever the second run returns is what the test asserts on."""
    run = subprocess.run(argv, **kwargs)
    if run.returncode != 0 and "exitcode: -6" in (run.stdout or "") + (run.stderr or ""):
        print(f"a worker of {argv[:4]} aborted (SIGABRT); launching once more", file=sys.stderr)
        run = subprocess.run(argv, **kwargs)
    return run
