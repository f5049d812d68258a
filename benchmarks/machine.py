"""The machine line every benchmark prints first, so a result pasted into docs/benchmarks.md says
where and on what code it was measured:

    machine: AMD EPYC (Zen 4, family 25 model 17), 2 cores, avx512_bf16 avx512f avx2 | torch 2.13.0, 2 threads | YYYY-MM-DD, commit abc1234
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

# The flags that decide CPU speed here: bf16 matmul units (AMX, avx512_bf16) or AVX-512 / AVX2 only.
FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2")


def amd_core(family: str, flags: list[str]) -> str:
    """An EPYC's model name alone does not say which core it is; its family (and AVX-512) does."""
    if family == "25":
        return "Zen 4" if "avx512f" in flags else "Zen 3"
    return {"23": "Zen/Zen 2", "26": "Zen 5"}.get(family, "")


def cpu() -> str:
    """'AMD EPYC (Zen 4, family 25 model 17), 2 cores, avx512_bf16 avx512f avx2' from /proc/cpuinfo."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    name = info.get("model name", platform.machine())
    family, model = info.get("cpu family", "?"), info.get("model", "?")
    flags = [f for f in FLAGS if f in info.get("flags", "").split()]
    core = amd_core(family, flags) if info.get("vendor_id") == "AuthenticAMD" else ""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name} ({core + ', ' if core else ''}family {family} model {model}), {cores} cores, {' '.join(flags) or 'no AVX2'}"


def commit() -> str:
    """The checkout's short commit, '+changes' when the tree differs from it; 'unknown' outside git."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def machine_line() -> str:
    import torch

    return (f"machine: {cpu()} | torch {torch.__version__}, {torch.get_num_threads()} threads | "
            f"{datetime.date.today().isoformat()}, commit {commit()}")
