"""`rewardsmith serve` through the real entry point: a subprocess on loopback, then a clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from rewardsmith.cli import main


def test_serve_command_runs_the_server(decoder_rm_dir, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "server.log"
    env = {**os.environ, "REWARDSMITH_API_KEY": "k3y"}  # the key from the environment, not argv
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rewardsmith", "serve", str(decoder_rm_dir), "--port", str(port),
                                 "--precision", "fp32"], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not come up:\n{log.read_text()}")
            time.sleep(0.2)
        body = {"items": [{"prompt": "卵のゆで方は?", "response": "9分ゆでます。"}]}
        assert httpx.post(f"{url}/score", json=body).status_code == 401
        r = httpx.post(f"{url}/score", json=body, headers={"Authorization": "Bearer k3y"})
        assert r.status_code == 200 and len(r.json()["rewards"]) == 1
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert f"Uvicorn running on http://127.0.0.1:{port}" in log.read_text()  # loopback by default


def test_bad_settings_fail_before_loading_the_model(capsys):
    assert main(["serve", "no/such/model", "--max-items", "0", "--request-timeout", "-1", "--policy-eos", ""]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid server settings")
    assert "--max-items 0" in err and "--request-timeout -1" in err and "--policy-eos is empty" in err


def test_missing_model_is_one_clean_error(capsys, tmp_path):
    assert main(["serve", str(tmp_path / "nothing-here")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
