"""Soak run: mixed valid and invalid requests against `rewardsmith serve` for minutes, on loopback.

    python benchmarks/serve_soak.py                    # multilingual-e5-small with a fresh head, 5 minutes
    python benchmarks/serve_soak.py --tiny --duration 60
    python benchmarks/serve_soak.py --model out/rm --clients 16 --invalid-fraction 0.5

The real server (`python -m rewardsmith serve`, a subprocess on 127.0.0.1) gets `--clients`
concurrent connections, each sending requests until `--duration` seconds have passed: valid
ones on every endpoint (/score with 1-4 items, /compare, /best-of-n, /get_reward, real ja/ko/en
texts of varied length) and, `--invalid-fraction` of the time, invalid ones (missing or unknown
fields, wrong types, blank responses, unpaired surrogates, bodies that are not JSON or not UTF-8,
over --max-items). A valid request must get 200 with one reward per item, an invalid one a 4xx
naming a field; anything else -- a 5xx, a dropped connection, a 2xx for a bad body -- counts as
an error. The server's resident memory is sampled every `--sample-seconds`.

Reports the machine (CPU model, flags that matter to torch, cores), requests and their statuses,
errors, p50/p99 latency of valid and invalid requests, and the server's RSS after warm-up, at
the end, its maximum, and its slope over the second half of the run (flat: not growing). Ends
with SIGTERM: the server must drain and exit 0. Bounded: every request has a timeout, the run
stops at `--duration`, the server is always stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from serve_load import load_items, percentile, start_server

ROOT = Path(__file__).resolve().parents[1]
TORCH_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")


def machine_line() -> str:
    """'AMD EPYC 7B13, 2 cores, flags avx2 fma f16c' from /proc/cpuinfo (Linux)."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    have = " ".join(f for f in TORCH_FLAGS if f in flags) or "none of " + " ".join(TORCH_FLAGS)
    return f"machine: {model}, {os.cpu_count()} cores, flags {have}"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def slope_mb_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mt, mm = sum(t for t, _ in samples) / n, sum(m for _, m in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return 60 * sum((t - mt) * (m - mm) for t, m in samples) / var if var else 0.0


def valid_request(rng: random.Random, items: list) -> tuple[str, dict]:
    conv, response = rng.choice(items)
    kind = rng.choice(["/score", "/compare", "/best-of-n", "/get_reward"])
    if kind == "/score":
        return kind, {"items": [{"messages": c, "response": r} for c, r in rng.sample(items, rng.randint(1, 4))]}
    if kind == "/compare":
        return kind, {"messages": conv, "a": response, "b": rng.choice(items)[1]}
    if kind == "/best-of-n":
        others = [rng.choice(items)[1] for _ in range(rng.randint(1, 3))]
        return kind, {"messages": conv, "responses": [response, *others]}
    prompt = conv[-1]["content"]
    return kind, {"query": [prompt + response], "prompts": [prompt]}


def invalid_request(rng: random.Random, items: list, max_items: int) -> tuple[str, bytes, str]:
    """(path, raw body, content type) of a request the server must refuse with a 4xx."""
    conv, response = rng.choice(items)
    item = {"messages": conv, "response": response}
    bodies = [
        ("/score", {}),
        ("/score", {"items": []}),
        ("/score", {"items": [{**item, "respones": "typo"}]}),
        ("/score", {"items": [{"messages": conv, "response": "   "}]}),
        ("/score", {"items": [{"messages": conv, "response": 42}]}),
        ("/score", {"items": [item] * (max_items + 1)}),
        ("/score", {"items": [{"messages": conv[:-1] + [{"role": "robot", "content": "x"}], "response": response}]}),
        ("/compare", {"messages": conv, "a": response}),
        ("/best-of-n", {"messages": conv, "responses": []}),
        ("/get_reward", {"query": "not a list"}),
        ("/get_reward", {"query": ["a", "b"], "prompts": ["a"]}),
    ]
    choice = rng.randrange(len(bodies) + 3)
    if choice == len(bodies):
        return "/score", b'{"items": [{"prompt": "x", "response": "', "application/json"  # cut short
    if choice == len(bodies) + 1:
        return "/score", b'{"items": [{"prompt": "x", "response": "\xff\xfe"}]}', "application/json"
    if choice == len(bodies) + 2:
        return "/compare", b'{"prompt": "x", "a": "\\ud800", "b": "y"}', "application/json"
    path, body = bodies[choice]
    return path, json.dumps(body, ensure_ascii=False).encode(), "application/json"


async def soak(url: str, items: list, args, pid: int) -> dict:
    import httpx

    rng = random.Random(args.seed)
    statuses: Counter = Counter()
    errors: Counter = Counter()
    latency = {"valid": [], "invalid": []}
    samples: list[tuple[float, float]] = []
    start = time.perf_counter()
    deadline = start + args.duration

    async def client(http, seed: int):
        crng = random.Random(seed)
        while time.perf_counter() < deadline:
            invalid = crng.random() < args.invalid_fraction
            if invalid:
                path, body, ctype = invalid_request(crng, items, args.max_items)
            else:
                path, payload = valid_request(crng, items)
                body, ctype = json.dumps(payload, ensure_ascii=False).encode(), "application/json"
            t = time.perf_counter()
            try:
                r = await http.post(path, content=body, headers={"content-type": ctype})
            except Exception as e:  # noqa: BLE001 -- a dropped connection is an error to count
                errors[f"{type(e).__name__}"] += 1
                continue
            latency["invalid" if invalid else "valid"].append(time.perf_counter() - t)
            statuses[r.status_code] += 1
            if r.status_code >= 500 or (invalid and r.status_code < 400):
                errors[f"{'invalid' if invalid else 'valid'} {path} -> {r.status_code}"] += 1
            elif invalid and not (r.json().get("errors") or [{}])[0].get("field"):
                errors[f"invalid {path} -> {r.status_code} naming no field"] += 1
            elif not invalid and r.status_code != 200:
                errors[f"valid {path} -> {r.status_code}"] += 1

    async def sampler():
        while time.perf_counter() < deadline:
            samples.append((time.perf_counter() - start, rss_mb(pid)))
            await asyncio.sleep(args.sample_seconds)
        samples.append((time.perf_counter() - start, rss_mb(pid)))

    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=url, timeout=args.request_timeout, limits=limits) as http:
        await asyncio.gather(sampler(), *[client(http, args.seed * 1000 + i) for i in range(args.clients)])
    return {"statuses": statuses, "errors": errors, "latency": latency, "samples": samples,
            "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="multilingual-e5-small",
                   help="a reward model folder, or an embedded base name (gets a fresh head) (default: %(default)s)")
    p.add_argument("--tiny", action="store_true", help="a tiny random decoder (tests/tiny_models.py) instead")
    p.add_argument("--duration", type=float, default=300, help="seconds of load (default: %(default)s)")
    p.add_argument("--clients", type=int, default=8, help="concurrent connections (default: %(default)s)")
    p.add_argument("--invalid-fraction", type=float, default=0.3, help="(default: %(default)s)")
    p.add_argument("--max-items", type=int, default=16, help="the server's --max-items (default: %(default)s)")
    p.add_argument("--sample-seconds", type=float, default=5, help="RSS sampling interval (default: %(default)s)")
    p.add_argument("--request-timeout", type=float, default=120, help="client timeout (default: %(default)s)")
    p.add_argument("--max-length", type=int, default=512,
                   help="tokens per item for a fresh model's manifest; longer texts are cut (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds, so the server is always stopped

    import httpx
    import torch

    print(machine_line(), flush=True)
    items, source = load_items(400, args.seed)
    with tempfile.TemporaryDirectory(prefix="rewardsmith-soak-") as tmp:
        if args.tiny:
            sys.path.insert(0, str(ROOT / "tests"))
            import tiny_models

            from rewardsmith.models import init_reward_model, save_reward_model

            base = tiny_models.tiny_decoder(Path(tmp) / "base")  # max_length 256: its byte-level BPE makes long rows
            model_dir = save_reward_model(init_reward_model(base, max_length=256), Path(tmp) / "rm", score_stats=(0.0, 1.0))
            name = "tiny random decoder"
        elif Path(args.model).is_dir():
            model_dir, name = Path(args.model), args.model
        else:  # an embedded base model with a fresh (random) head: a soak does not care about quality
            from rewardsmith.models import init_reward_model, save_reward_model

            torch.manual_seed(args.seed)
            model_dir = save_reward_model(init_reward_model(args.model, max_length=args.max_length), Path(tmp) / "rm")
            name = f"{args.model} (fresh head, max_length {args.max_length})"
        server, url = start_server(model_dir, Path(tmp), "--max-items", str(args.max_items))
        try:
            for conv, response in items[:32]:  # warm-up: allocator, tokenizer, first kernels
                httpx.post(f"{url}/score", json={"items": [{"messages": conv, "response": response}]}, timeout=120)
            rss_start = rss_mb(server.pid)
            malloc = next((line.split("allocator: ", 1)[1] for line in (Path(tmp) / "server.log").read_text().splitlines()
                           if "allocator: " in line), "not logged")
            print(f"server malloc: {malloc} (REWARDSMITH_ALLOCATOR={os.environ.get('REWARDSMITH_ALLOCATOR', 'auto')})")
            print(f"model {name}; {len(items)} texts from {source}; {args.clients} clients, "
                  f"{args.invalid_fraction:.0%} invalid, {args.duration:g} s; server RSS after warm-up "
                  f"{rss_start:.0f} MB", flush=True)
            result = asyncio.run(soak(url, items, args, server.pid))
            rss_end = rss_mb(server.pid)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                code = server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
                code = "killed after 60 s"

    total = sum(result["statuses"].values()) + sum(v for k, v in result["errors"].items() if "->" not in k)
    lat = result["latency"]
    second_half = [s for s in result["samples"] if s[0] >= result["seconds"] / 2]
    print(f"requests {total} in {result['seconds']:.0f} s ({total / result['seconds']:.1f}/s): "
          f"{len(lat['valid'])} valid, {len(lat['invalid'])} invalid answered")
    print("statuses " + ", ".join(f"{k}: {v}" for k, v in sorted(result["statuses"].items())))
    print(f"errors {sum(result['errors'].values())}" +
          "".join(f"\n  {k}: {v}" for k, v in result["errors"].most_common()))
    for kind in ("valid", "invalid"):
        if lat[kind]:
            print(f"latency {kind}: p50 {1000 * percentile(lat[kind], 50):.1f} ms, "
                  f"p99 {1000 * percentile(lat[kind], 99):.1f} ms")
    print(f"server RSS: {rss_start:.0f} MB after warm-up, {rss_end:.0f} MB at the end, "
          f"max {max(m for _, m in result['samples']):.0f} MB; slope over the second half "
          f"{slope_mb_per_minute(second_half):+.2f} MB/min")
    print(f"SIGTERM: exit {code}")
    return 0 if not result["errors"] and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
