"""`rewardsmith serve MODEL`: the HTTP reward server (FastAPI + uvicorn) for one reward model."""

from __future__ import annotations

import argparse
import logging
import os
import signal

EPILOG = """examples:
  rewardsmith serve out/rm-ja
  rewardsmith serve out/rm-ko --port 5000 --api-key "$RM_KEY"
  rewardsmith serve out/rm --host 0.0.0.0 --precision fp32 --max-items 64

  curl -s localhost:8000/score -H 'Content-Type: application/json' \\
       -d '{"items": [{"prompt": "卵のゆで方は?", "response": "9分ゆでます。"}]}'
  curl -s localhost:8000/best-of-n -H 'Content-Type: application/json' \\
       -d '{"prompt": "한국의 수도는?", "responses": ["서울입니다.", "부산입니다."]}'

OpenRLHF: --remote_rm_url http://127.0.0.1:8000/get_reward
Endpoints and bodies: http://127.0.0.1:8000/docs once the server runs; metrics at /metrics.
The server binds 127.0.0.1 unless --host says otherwise. The API key can also come from the
environment variable REWARDSMITH_API_KEY (keeps it out of the process list).
"""


def register(subparsers) -> None:
    from rewardsmith.serve.config import ServeConfig

    d = ServeConfig()
    p = subparsers.add_parser(
        "serve",
        help="serve a reward model over HTTP (score, compare, best-of-n, OpenRLHF /get_reward)",
        description="Serve one reward model over HTTP with dynamic batching: concurrent requests are "
        "scored together by one worker that owns the model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="a reward model folder (or an embedded name / hub id)")
    p.add_argument("--host", default=d.host, help="address to bind (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=d.port, help="port (default: %(default)s)")
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' on POST endpoints (default: $REWARDSMITH_API_KEY, else none)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default=d.precision,
                   help="scoring precision; auto = bf16 where the hardware has it (default: %(default)s)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the forward pass, after a one-time compile of 1-2 minutes at startup; "
                   "the gain depends on the CPU and the model, from none to 1.5x (docs/benchmarks.md)")
    p.add_argument("--token-budget", type=int, default=d.token_budget,
                   help="padded tokens per forward pass (rows x longest); forward passes draw on every "
                   "request in flight (default: 2048 on CPU, where small batches stay in cache; 16384 on GPU)")
    p.add_argument("--max-items", type=int, default=d.max_items, help="items per request (default: %(default)s)")
    p.add_argument("--max-chars", type=int, default=d.max_chars,
                   help="characters per item, conversation + response; tokens beyond the model's max_length "
                   "are truncated by its manifest (default: %(default)s)")
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes,
                   help="request body size (default: %(default)s)")
    p.add_argument("--max-pending", type=int, default=d.max_pending,
                   help="items in flight (queued or being scored) at most; past it a request gets 503 with "
                   "Retry-After instead of queueing (default: %(default)s)")
    p.add_argument("--request-timeout", type=float, default=d.request_timeout,
                   help="seconds a request may wait for its scores before a 503 (default: %(default)s)")
    p.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms,
                   help="how long an idle worker waits to batch concurrent requests (default: %(default)s)")
    p.add_argument("--policy-eos", action="append", default=[], metavar="TEXT",
                   help="the policy's end-of-sequence text, removed from the end of /get_reward queries "
                   "(OpenRLHF decodes rollouts with special tokens: a policy in front of an encoder reward "
                   "model leaves e.g. '</s>' or '<|im_end|>' on every response); repeatable")
    p.set_defaults(func=run)


def run(args) -> int:
    from rewardsmith.serve.config import ServeConfig

    config = ServeConfig(
        host=args.host, port=args.port, api_key=args.api_key or os.environ.get("REWARDSMITH_API_KEY") or None,
        max_items=args.max_items, max_chars=args.max_chars, max_body_bytes=args.max_body_bytes,
        max_pending=args.max_pending, request_timeout=args.request_timeout, max_wait_ms=args.max_wait_ms,
        token_budget=args.token_budget, precision=args.precision, compile=args.compile,
        policy_eos=tuple(args.policy_eos),
    ).check()  # before the slow model load: a typo fails in a second, not a minute
    try:
        import uvicorn

        from rewardsmith.serve.app import create_app
    except ImportError as e:
        from rewardsmith.errors import RewardsmithError

        raise RewardsmithError(f"the server needs {e.name}; install it with: pip install 'rewardsmith[serve]'") from None
    from rewardsmith.models import load_reward_model
    from rewardsmith.score import scoring_dtype

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Weights in the scoring dtype (bf16 where the CPU has it), as `rewardsmith score` loads them.
    rm = load_reward_model(args.model, dtype=scoring_dtype(config.precision))
    app = create_app(rm, config, name=str(args.model))
    if config.host not in ("127.0.0.1", "localhost", "::1") and config.api_key is None:
        logging.getLogger("rewardsmith.serve").warning(
            "listening on %s without --api-key: anyone who can reach this port can use the model", config.host)
    # SIGTERM / Ctrl-C: uvicorn stops accepting, lets every request in flight finish, then stops the
    # worker. In-flight requests end by --request-timeout at the latest, so the drain waits that
    # long. uvicorn then re-raises the signal to the handler it found; a no-op one here makes a
    # clean drain exit 0 (the default handlers would die by SIGTERM / raise KeyboardInterrupt).
    stopped_by: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stopped_by.append(signum))
    uvicorn.run(app, host=config.host, port=config.port, log_level="info",
                timeout_graceful_shutdown=config.request_timeout + 5)
    if stopped_by:
        logging.getLogger("rewardsmith.serve").info("stopped by %s after draining the requests in flight",
                                                    signal.Signals(stopped_by[0]).name)
    return 0
