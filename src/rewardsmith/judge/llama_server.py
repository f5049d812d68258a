"""Start llama.cpp's OpenAI-compatible server (llama-cpp-python) on loopback for a GGUF model.

    python -m rewardsmith.judge.llama_server smollm2-135m-instruct --port 8080
    # then: --judge openai:smollm2-135m-instruct@http://127.0.0.1:8080/v1

The model is a GGUF file or an embedded decoder name (`rewardsmith.models.embedded.gguf_path`).
llama-cpp-python is an optional dependency built from source (~10 min on 2 idle cores):
    CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_BLAS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \\
        pip install --no-deps llama-cpp-python==0.3.36
    pip install diskcache==5.6.3 pydantic-settings==2.16.3 python-dotenv==1.2.4 \\
        sse-starlette==3.7.0 starlette-context==0.3.6
`LlamaServer` is also what the integration tests use: a context manager that picks a free
port, waits until /v1/models answers, and stops the process it started (by its pid) on exit.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from rewardsmith.errors import RewardsmithError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resolve_gguf(model: str) -> Path:
    path = Path(model)
    if path.is_file():
        return path
    if path.suffix == ".gguf":
        raise RewardsmithError(f"GGUF file {model} does not exist")
    from rewardsmith.models.embedded import gguf_path

    return gguf_path(model)


class LlamaServer:
    def __init__(self, model: str, *, alias: str | None = None, host: str = "127.0.0.1", port: int | None = None,
                 n_ctx: int = 4096, n_threads: int | None = None, log: str | Path | None = None):
        self.gguf = resolve_gguf(model)
        self.alias = alias or (model if not Path(model).is_file() else self.gguf.stem)
        self.host, self.port = host, port or _free_port()
        self.n_ctx, self.n_threads = n_ctx, n_threads
        self.log = Path(log) if log else None
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def spec(self) -> str:
        """The backend spec that reaches this server: `openai:ALIAS@URL`."""
        return f"openai:{self.alias}@{self.url}"

    def start(self, timeout: float = 180.0) -> "LlamaServer":
        try:
            import llama_cpp  # noqa: F401  (fail here with the install line, not in the child)
        except ImportError as e:
            raise RewardsmithError(f"llama-cpp-python is not installed ({e}); see `python -m "
                                   "rewardsmith.judge.llama_server --help` for the install commands") from None
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--model_alias", self.alias,
               "--host", self.host, "--port", str(self.port), "--n_ctx", str(self.n_ctx)]
        if self.n_threads:
            cmd += ["--n_threads", str(self.n_threads)]
        out = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RewardsmithError(f"llama.cpp server exited with code {self.process.returncode} "
                                       f"(command: {' '.join(cmd)}); see {self.log or 'its output'}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RewardsmithError(f"llama.cpp server did not answer at {self.url} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rewardsmith.judge.llama_server", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="GGUF file or embedded decoder name (smollm2-135m-instruct, gemma-3-270m)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default loopback only)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--n-ctx", type=int, default=4096, help="context length in tokens (default 4096)")
    p.add_argument("--n-threads", type=int, help="CPU threads (default: llama.cpp's choice)")
    args = p.parse_args(argv)
    server = LlamaServer(args.model, host=args.host, port=args.port, n_ctx=args.n_ctx, n_threads=args.n_threads)
    try:
        server.start()
        print(f"serving {server.gguf} at {server.url}\nuse: --judge {server.spec}", flush=True)
        server.process.wait()
    except RewardsmithError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
