"""Load test: many concurrent clients against `rewardsmith serve`, against the offline Scorer.

    python benchmarks/serve_load.py                       # e5-small with a fresh head, 32 clients
    python benchmarks/serve_load.py --model out/rm --clients 64 --requests 800 --items-per-request 8

One run, same inputs, same machine, in `--rounds` alternating rounds (each on its own share of
the inputs, so load from other processes on a shared machine hits both sides alike):
  offline: `Scorer.score(share)` in this process (one call: the offline scorer's best case);
  served:  the real server (`python -m rewardsmith serve`, a subprocess on 127.0.0.1) and
           `--clients` concurrent HTTP clients sending the share as POST /score requests of
           `--items-per-request` items each.
Reports items/s of both and their ratio, p50/p95/p99 latency, errors, items per scorer call,
and items per CPU-second (server + clients vs offline), which contention on a shared machine
disturbs less than wall-clock rates.
Target: served >= 70% of offline, zero errors. Bounded: stops issuing after `--max-seconds`,
every request has a timeout, the server is always stopped. Loopback only.

Inputs: ja (ja-llm-judged), en (hh-rlhf test) from ../shared/data when present, else a built-in
ja/ko/en set; both responses of every pair, so lengths vary as they do in real traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_line

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REWARDSMITH_SHARED_DATA", ROOT.parent / "shared" / "data"))

BUILTIN = [
    ("栄養バランスの良い食事とは何ですか？", "主食、主菜、副菜をそろえ、野菜を毎食とることです。"),
    ("광화문에 어떻게 가나요?", "지하철 5호선 광화문역에서 내리면 바로 앞입니다."),
    ("How do I boil an egg?", "Put it in boiling water for nine minutes, then cool it in cold water."),
    ("日本の首都はどこですか？", "東京です。"),
    ("한국어 문장을 고쳐 주세요: 나는 학교에 갔다요.", "'나는 학교에 갔어요.'가 자연스럽습니다."),
]


def _hh_items(path: Path, limit: int) -> list[tuple[list[dict], str]]:
    """hh-rlhf transcripts -> (conversation, final assistant answer); a minimal reader for the benchmark."""
    items = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            for side in ("chosen", "rejected"):
                turns = json.loads(line)[side].split("\n\nAssistant:")
                if len(turns) < 2:
                    continue
                *context, answer = turns
                messages = []
                for k, chunk in enumerate(context):
                    parts = chunk.split("\n\nHuman:")
                    if k > 0 and parts[0].strip():
                        messages.append({"role": "assistant", "content": parts[0].strip()})
                    messages += [{"role": "user", "content": p.strip()} for p in parts[1:]]
                if messages and messages[-1]["role"] == "user" and answer.strip():
                    items.append((messages, answer.strip()))
            if len(items) >= limit:
                return items[:limit]
    return items


def _ja_items(path: Path, limit: int) -> list[tuple[list[dict], str]]:
    items = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            items += [(row["prompt"], row["chosen"]), (row["prompt"], row["rejected"])]
            if len(items) >= limit:
                break
    return items[:limit]


def load_items(n: int, seed: int) -> tuple[list[tuple[list[dict], str]], str]:
    hh, ja = SHARED / "hh-rlhf-test" / "helpful-base.test.jsonl.gz", SHARED / "ja-llm-judged" / "elyza-tasks-100.jsonl.gz"
    if hh.is_file() and ja.is_file():
        items, source = _hh_items(hh, n - n // 2) + _ja_items(ja, n // 2), f"{hh.parent.name} + {ja.parent.name}"
    else:
        items = [([{"role": "user", "content": p}], r) for p, r in BUILTIN]
        items, source = [(c, f"{r} ({i})") for i in range(n) for c, r in [items[i % len(items)]]], "built-in ja/ko/en"
    random.Random(seed).shuffle(items)
    return items[:n], source


def offline(scorer, items) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for one Scorer call over all items."""
    wall, cpu = time.perf_counter(), time.process_time()
    scorer.score(items)
    return time.perf_counter() - wall, time.process_time() - cpu


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(model_dir: Path, tmp: Path, *options: str,
                 startup_seconds: float = 180) -> tuple[subprocess.Popen, str]:
    """`python -m rewardsmith serve MODEL_DIR OPTIONS` on a free loopback port, once /health answers:
    (process, url). Its log goes to TMP/server.log; a server that does not come up ends the run."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url, log_path = f"http://127.0.0.1:{port}", tmp / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "rewardsmith", "serve", str(model_dir), "--port", str(port),
                                   *options], stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + startup_seconds
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            print(log_path.read_text()[-3000:], file=sys.stderr)
            raise SystemExit("the server did not start")
        time.sleep(0.3)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def drive(url: str, requests: list[list[dict]], clients: int, max_seconds: float, timeout: float):
    """Send the requests from `clients` concurrent connections; returns (latencies, errors, seconds, items)."""
    import httpx

    todo = list(reversed(requests))
    latencies: list[float] = []
    errors: list[str] = []
    done_items = 0
    deadline = time.perf_counter() + max_seconds

    async def client(http):
        nonlocal done_items
        while todo and time.perf_counter() < deadline:
            items = todo.pop()
            t = time.perf_counter()
            try:
                r = await http.post("/score", json={"items": items})
                if r.status_code != 200 or len(r.json()["rewards"]) != len(items):
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                    continue
            except Exception as e:  # noqa: BLE001 -- every failure is counted and reported
                errors.append(f"{type(e).__name__}: {e}")
                continue
            latencies.append(time.perf_counter() - t)
            done_items += len(items)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*[client(http) for _ in range(clients)])
        seconds = time.perf_counter() - start
    return latencies, errors, seconds, done_items


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="multilingual-e5-small",
                   help="a reward model folder, or an embedded base name (gets a fresh head) (default: %(default)s)")
    p.add_argument("--requests", type=int, default=120, help="POST /score requests in all (default: %(default)s)")
    p.add_argument("--items-per-request", type=int, default=4, help="(default: %(default)s)")
    p.add_argument("--clients", type=int, default=32, help="concurrent connections (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3,
                   help="alternate offline and served runs this many times, each on its own share of the "
                   "inputs, so load from other processes hits both sides alike (default: %(default)s)")
    p.add_argument("--max-seconds", type=float, default=600,
                   help="stop issuing requests after this many seconds of serving (default: %(default)s)")
    p.add_argument("--max-length", type=int, default=512, help="for a fresh model's manifest (default: %(default)s)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    p.add_argument("--compile", action="store_true", help="torch.compile the forward pass on both sides")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(machine_line())
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the server subprocess is always stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import httpx
    import torch

    from rewardsmith.models import init_reward_model, load_reward_model, save_reward_model
    from rewardsmith.score import Scorer, scoring_dtype

    n = args.requests * args.items_per_request
    items, source = load_items(n, args.seed)
    requests = [[{"messages": c, "response": r} for c, r in items[i:i + args.items_per_request]]
                for i in range(0, len(items), args.items_per_request)]
    per_round = -(-len(requests) // args.rounds)
    with tempfile.TemporaryDirectory(prefix="rewardsmith-serve-load-") as tmp:
        if Path(args.model).is_dir():
            model_dir = Path(args.model)
        else:  # an embedded base model with a fresh (random) head: throughput does not care
            torch.manual_seed(args.seed)
            model_dir = save_reward_model(init_reward_model(args.model, max_length=args.max_length), Path(tmp) / "rm")
        rm = load_reward_model(model_dir, dtype=scoring_dtype(args.precision))  # as `rewardsmith serve` does
        scorer = Scorer(rm, precision=args.precision, compile=args.compile)
        scorer.score(items[:32])  # warm-up: allocator, autocast kernels
        print(f"model {args.model}  {len(items)} items from {source}  {args.rounds} rounds  "
              f"torch threads {torch.get_num_threads()}  {scorer.dtype}", flush=True)

        server, url = start_server(model_dir, Path(tmp), "--precision", args.precision, "--max-items",
                                   str(max(256, args.items_per_request)), *(["--compile"] if args.compile else []),
                                   startup_seconds=900 if args.compile else 180)
        totals = dict(off_wall=0.0, off_cpu=0.0, off_items=0, srv_wall=0.0, srv_cpu=0.0, srv_items=0)
        latencies: list[float] = []
        errors: list[str] = []
        try:
            asyncio.run(drive(url, requests[:8], 8, 60, 60))  # warm-up
            warm = httpx.get(f"{url}/metrics").text
            budget = args.max_seconds
            for k in range(args.rounds):
                share = requests[k * per_round:(k + 1) * per_round]
                share_items = [(x["messages"], x["response"]) for req in share for x in req]
                wall, cpu = offline(scorer, share_items)
                totals["off_wall"] += wall
                totals["off_cpu"] += cpu
                totals["off_items"] += len(share_items)
                server_cpu, client_cpu = process_cpu(server.pid), time.process_time()
                lat, errs, seconds, done = asyncio.run(drive(url, share, args.clients, budget, timeout=300))
                used = process_cpu(server.pid) - server_cpu + time.process_time() - client_cpu
                budget -= seconds
                latencies += lat
                errors += errs
                totals["srv_wall"] += seconds
                totals["srv_cpu"] += used
                totals["srv_items"] += done
                print(f"round {k + 1}: offline {len(share_items) / wall:6.1f} items/s   served {done / seconds:6.1f} "
                      f"items/s   ({done / seconds / (len(share_items) / wall):.0%})", flush=True)
            metrics = httpx.get(f"{url}/metrics").text
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()

    offline_rate = totals["off_items"] / totals["off_wall"]
    served = totals["srv_items"] / totals["srv_wall"]
    def delta(name: str) -> float:
        return _metric(metrics, name) - _metric(warm, name)

    passes, rows = delta("rewardsmith_batch_items_count"), delta("rewardsmith_batch_items_sum")
    shared, busy = delta("rewardsmith_batch_requests_sum"), delta("rewardsmith_batch_seconds_sum")
    ms = [x * 1000 for x in latencies] or [float("nan")]
    print(f"offline Scorer: {totals['off_items']} items in {totals['off_wall']:.1f} s -> {offline_rate:.1f} items/s "
          f"({totals['off_items'] / totals['off_cpu']:.2f} items per CPU-second)")
    print(f"served: {len(latencies)} requests ({totals['srv_items']} items) in {totals['srv_wall']:.1f} s from "
          f"{args.clients} clients -> {served:.1f} items/s, {len(latencies) / totals['srv_wall']:.1f} requests/s "
          f"({totals['srv_items'] / totals['srv_cpu']:.2f} items per CPU-second, server + clients)")
    print(f"latency ms: p50 {percentile(ms, 50):.0f}  p95 {percentile(ms, 95):.0f}  p99 {percentile(ms, 99):.0f}  "
          f"mean {statistics.fmean(ms):.0f}")
    print(f"errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    print(f"forward passes: {passes:.0f}, mean {rows / max(passes, 1):.1f} rows and {shared / max(passes, 1):.1f} "
          f"requests per pass; worker in forward passes {busy / totals['srv_wall']:.0%} of the served time")
    ratio = served / offline_rate
    cpu_ratio = (totals["srv_items"] / totals["srv_cpu"]) / (totals["off_items"] / totals["off_cpu"])
    ok = ratio >= 0.70 and not errors and totals["srv_items"] == len(items)
    print(f"served / offline throughput = {ratio:.1%}  (per CPU-second: {cpu_ratio:.1%})  "
          f"target >= 70% with zero errors: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
