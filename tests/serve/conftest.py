"""A real reward server for the serve tests: uvicorn on a free loopback port, in a thread.

`serve(rm_dir, **config) -> Server` starts one (stopped at the end of the test module); the tiny
reward models (`encoder_rm_dir`, `decoder_rm_dir`, tests/conftest.py) are made with the models
API, exactly the way a user's trained model arrives at `rewardsmith serve`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ports import free_port


@dataclass
class Server:
    url: str
    rm: object  # the RewardModel the server scores with (the library side of every comparison)
    app: object


def _start(rm, **settings) -> tuple[Server, object, threading.Thread]:
    import uvicorn

    from rewardsmith.serve.app import create_app
    from rewardsmith.serve.config import ServeConfig

    port = free_port()
    app = create_app(rm, ServeConfig(port=port, precision="fp32", **settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 300  # a compiled server compiles before it listens: >60 s on a busy 2-core CPU
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return Server(f"http://127.0.0.1:{port}", rm, app), server, thread


@pytest.fixture(scope="module")
def serve():
    running = []

    def start(rm_dir: Path, **settings) -> Server:
        from rewardsmith.models import load_reward_model

        handle, server, thread = _start(load_reward_model(rm_dir), **settings)
        running.append((server, thread))
        return handle

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(30)
