"""The one user-facing error type, and the message for a name that is not known.

Raise `RewardsmithError` for anything a user can fix (a bad file, an unknown name, a wrong
setting). Its message names the file/line/field, the value and the fix. The CLI turns it into
one clean `error: ...` line and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import errno
import os
import shutil
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class RewardsmithError(Exception):
    """A problem the user can fix; the message says what and how."""


def is_disk_full(error: BaseException, folder: str | os.PathLike | None = None) -> bool:
    """True for "no space left on device", "disk quota exceeded" and SQLite's "database or disk is
    full": the user frees space and reruns. Libraries that write in native code do not raise
    OSError for it (seen on a full 64 KB tmpfs): safetensors raises SafetensorError "... (os error
    28)", torch.save a RuntimeError "unexpected pos 576 vs 534"; given the `folder` written to,
    any error while that disk has under 1 MB free counts too."""
    if isinstance(error, sqlite3.Error):
        return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    if f"(os error {errno.ENOSPC})" in str(error) or f"(os error {errno.EDQUOT})" in str(error):
        return True
    try:
        return folder is not None and shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def close_matches(name: str, candidates: Iterable[str], *, n: int = 3, cutoff: float = 0.5) -> list[str]:
    """Up to `n` candidates near `name`, best first, case-insensitive: those containing `name`
    ("e5" -> "multilingual-e5-small", which difflib's ratio misses), then difflib's close matches."""
    by_lower: dict[str, str] = {}
    for c in candidates:
        by_lower.setdefault(c.lower(), c)
    low = name.lower()
    found = [c for lc, c in by_lower.items() if low and low in lc]
    found += [by_lower[m] for m in difflib.get_close_matches(low, list(by_lower), n=n, cutoff=cutoff)]
    return list(dict.fromkeys(found))[:n]


def unknown_name_error(kind: str, name: str, known: Iterable[str], *, fix: str = "", detail: str = "",
                       also_match: Iterable[str] = (), aliases: Mapping[str, str] | None = None,
                       listed_as: str | None = None, n: int = 3, cutoff: float = 0.5) -> RewardsmithError:
    """The error for `name` not being one of the `known` names of `kind`, for the caller to raise:

        unknown KIND 'NAME' (DETAIL): did you mean A, B? Known KINDs: ... . FIX

    `also_match` are more strings to match against that are not listed (folders beside a path, hub
    ids); `aliases` maps a matched string to the name to suggest (a hub id -> its short name);
    `listed_as` names the listing when "KINDs" does not fit.
    """
    known = list(known)
    aliases = aliases or {}
    close = [aliases.get(c, c) for c in close_matches(name, [*known, *also_match], n=n, cutoff=cutoff)]
    close = list(dict.fromkeys(close))
    head = f"unknown {kind} {name!r}" + (f" ({detail})" if detail else "")
    hint = f": did you mean {', '.join(close)}?" if close else "."
    listing = f" Known {listed_as or kind + 's'}: {', '.join(known)}." if known else ""
    return RewardsmithError(f"{head}{hint}{listing}" + (f" {fix}" if fix else ""))


def lookup_name(table: Mapping[str, T], kind: str, name: str, **error: Any) -> T:
    """`table[name]`, or raise `unknown_name_error(kind, name, table, **error)`."""
    try:
        return table[name]
    except KeyError:
        raise unknown_name_error(kind, name, table, **error) from None
