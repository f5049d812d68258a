"""`rewardsmith serve` through the real entry point: a subprocess on loopback, then a clean stop."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from rewardsmith.cli import main

from tests.ports import free_port


def test_serve_command_runs_the_server_and_drains_on_sigterm(decoder_rm_dir, tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "REWARDSMITH_API_KEY": "k3y"}  # the key from the environment, not argv
    # --max-wait-ms 1500: a lone request waits 1.5 s in the batcher, so it is in flight at SIGTERM.
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rewardsmith", "serve", str(decoder_rm_dir), "--port", str(port),
                                 "--precision", "fp32", "--max-wait-ms", "1500"],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer k3y"}
    body = {"items": [{"prompt": "卵のゆで方は?", "response": "9分ゆでます。"}]}
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
        assert httpx.post(f"{url}/score", json=body).status_code == 401
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            in_flight = [pool.submit(httpx.post, f"{url}/score", json=body, headers=auth, timeout=60)
                         for _ in range(2)]
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)  # both requests are waiting in the batcher
            responses = [f.result() for f in in_flight]
        assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
        assert all(len(r.json()["rewards"]) == 1 for r in responses)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert f"Uvicorn running on http://127.0.0.1:{port}" in text  # loopback by default
    assert "stopped by SIGTERM after draining" in text


def test_bad_settings_fail_before_loading_the_model(capsys):
    assert main(["serve", "no/such/model", "--max-items", "0", "--request-timeout", "-1", "--policy-eos", ""]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid server settings")
    assert "--max-items 0" in err and "--request-timeout -1" in err and "--policy-eos is empty" in err
    assert main(["serve", "no/such/model", "--max-pending", "10"]) == 2
    assert "--max-pending 10 is below --max-items 256" in capsys.readouterr().err


def test_missing_model_is_one_clean_error(capsys, tmp_path):
    assert main(["serve", str(tmp_path / "nothing-here")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
