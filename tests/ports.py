"""A free loopback port, for the servers and process groups tests start."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now. Tests that launch several processes pass one to torch's
    rendezvous: its default, 29500, is shared by every launch, so two xdist workers launching at
    once collide there (the likely cause of a 2-process gloo test aborting with SIGABRT once in
    three `make test` runs; it did not recur in six runs of those tests alone)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
