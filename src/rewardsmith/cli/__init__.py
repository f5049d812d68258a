"""The `rewardsmith` command line: parses arguments, builds a config, calls one stage.

Each sub-command lives in its own module in this package and exposes
`register(subparsers) -> None`, adding an `argparse` parser whose `func(args) -> int | None`
runs it. Modules are discovered here, so adding a command is adding a file.
`RewardsmithError` becomes one `error: ...` line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from rewardsmith import __version__
from rewardsmith.errors import RewardsmithError

_NOT_COMMANDS = {"docs"}  # helper modules in this package that add no sub-command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rewardsmith",
        description="Build, evaluate and serve reward models (ja / ko / en).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `rewardsmith COMMAND --help` for examples of each command.",
    )
    parser.add_argument("--version", action="version", version=version_line())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in _NOT_COMMANDS:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def version_line() -> str:
    """'rewardsmith 0.1.0 (torch 2.13.0+cpu, transformers 5.23.0, Python 3.11.7)': what a bug report
    needs. Read from the installed packages' metadata, so --version does not import torch."""
    import importlib.metadata
    import platform

    def installed(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return (f"rewardsmith {__version__} (torch {installed('torch')}, transformers {installed('transformers')}, "
            f"Python {platform.python_version()})")


def _quiet_libraries() -> None:
    """Our own progress bars and reports say what happens; the libraries' per-file bars and load
    reports drown them. Users who want them back set these variables themselves."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # also silences transformers' bars
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def entry() -> None:
    """The `rewardsmith` console script and `python -m rewardsmith`: `main()`, after switching a
    long-running command to jemalloc when it is installed (rewardsmith.allocator)."""
    from rewardsmith.allocator import run_under_jemalloc

    try:
        run_under_jemalloc(sys.argv[1:])
    except RewardsmithError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    sys.exit(main())


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except RewardsmithError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
