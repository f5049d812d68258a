"""Which malloc a training or serving process runs on.

On the CPU, PyTorch takes every activation from the C allocator. glibc's malloc keeps freed blocks
as free space inside its heap, and length-grouped batches have a new shape most steps, so the heap
fragments and peak RSS climbs with the number of steps. jemalloc's size classes reuse that space:
over the e5 recipe's epoch its peak RSS is lower at the same tokens/s (docs/benchmarks.md).

An allocator is chosen when a process starts (LD_PRELOAD), so the `rewardsmith` command runs itself
once more under jemalloc when the library is installed (Debian/Ubuntu `libjemalloc2`, conda
`jemalloc`, Fedora `jemalloc`) — what `python -m torch.backends.xeon.run_cpu --enable-jemalloc`
does. Only the console entry point does this, never `rewardsmith.cli.main()` called from Python,
and only for the long-running commands (LONG_RUNNING).

    REWARDSMITH_ALLOCATOR=auto      jemalloc when installed, else the system's malloc (the default)
    REWARDSMITH_ALLOCATOR=jemalloc  jemalloc, or an error naming the package to install
    REWARDSMITH_ALLOCATOR=system    never switch

A user's own LD_PRELOAD of an allocator (tcmalloc, mimalloc, jemalloc) is left alone, and so is
their MALLOC_CONF; without one, jemalloc purges from a background thread (JEMALLOC_CONF).
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Mapping, Sequence

from rewardsmith.errors import RewardsmithError

ENV = "REWARDSMITH_ALLOCATOR"
LONG_RUNNING = frozenset({"train", "demo", "serve"})
# Set in the re-executed process, so that it never tries again (and so tests can tell).
_SWITCHED = "_REWARDSMITH_ALLOCATOR_SWITCHED"
_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")
JEMALLOC_CONF = "background_thread:true"

_SEARCH = (
    "{conda}/lib/libjemalloc.so.2", "{conda}/lib/libjemalloc.so",
    "/usr/lib/*-linux-gnu/libjemalloc.so.2", "/usr/lib64/libjemalloc.so.2", "/usr/lib/libjemalloc.so.2",
    "/usr/local/lib/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so",
)


def find_jemalloc(env: Mapping[str, str] = os.environ) -> str | None:
    """The path of an installed libjemalloc, or None. The active conda env's first, then the system's."""
    conda = env.get("CONDA_PREFIX", "")
    for pattern in _SEARCH:
        if "{conda}" in pattern and not conda:
            continue
        for path in sorted(glob.glob(pattern.format(conda=conda))):
            if os.path.isfile(path):
                return path
    return None


def plan(argv: Sequence[str], env: Mapping[str, str], platform: str, library: str | None) -> dict[str, str] | None:
    """The environment to run `argv` again under jemalloc, or None to carry on as we are.

    Pure, so every branch is tested without exec: `library` is what find_jemalloc() found."""
    choice = env.get(ENV, "auto").strip().lower() or "auto"
    if choice not in ("auto", "jemalloc", "system"):
        raise RewardsmithError(f"{ENV}={env[ENV]!r}: use auto (the default), jemalloc or system")
    command = next((a for a in argv if not a.startswith("-")), None)
    if choice == "system" or command not in LONG_RUNNING or env.get(_SWITCHED):
        return None
    preload = env.get("LD_PRELOAD", "")
    if any(name in preload for name in _ALLOCATORS):
        return None  # the user chose an allocator themselves
    if not platform.startswith("linux") or library is None:
        if choice == "jemalloc":
            raise RewardsmithError(
                f"{ENV}=jemalloc but no libjemalloc was found"
                + ("" if platform.startswith("linux") else f" (LD_PRELOAD is Linux's; this is {platform})")
                + ": install it (apt install libjemalloc2, dnf install jemalloc, conda install jemalloc), "
                  f"or set {ENV}=auto")
        return None
    new = dict(env)
    new["LD_PRELOAD"] = f"{library}:{preload}" if preload else library
    new[_SWITCHED] = library
    # jemalloc returns freed pages to the OS from its own thread instead of inside malloc/free calls
    # on the training thread: the recipe's tokens/s came back to glibc's and above at the same peak
    # RSS (docs/benchmarks.md). A user's own MALLOC_CONF is kept as it is.
    new.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    return new


def run_under_jemalloc(argv: Sequence[str]) -> None:
    """Replace this process with `python -m rewardsmith ARGV` under jemalloc when plan() says so.
    Called first thing by the console entry point, before torch is imported."""
    env = plan(argv, os.environ, sys.platform, find_jemalloc())
    if env is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execve(sys.executable, [sys.executable, "-m", "rewardsmith", *argv], env)
        except OSError as e:  # an interpreter that cannot be run again (a frozen app): carry on as we are
            print(f"warning: could not switch to jemalloc ({e}); running on the system's malloc", file=sys.stderr)


def active() -> str:
    """The malloc this process runs on, for the log: 'jemalloc (PATH, MALLOC_CONF=...)', 'glibc malloc' etc."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            maps = f.read()
    except OSError:
        return "the system's malloc"
    for line in maps.splitlines():
        fields = line.split()  # address perms offset dev inode [path]
        path = fields[5] if len(fields) >= 6 else ""
        name = next((n for n in _ALLOCATORS if n in os.path.basename(path)), None)
        if name:
            conf = os.environ.get("MALLOC_CONF") if name == "jemalloc" else None
            return f"{name} ({path}" + (f", MALLOC_CONF={conf})" if conf else ")")
    return "glibc malloc" + ("" if find_jemalloc() else
                             f" (install libjemalloc2 for a lower peak memory; {ENV} in docs/training.md)")
