"""Detect text damaged by a wrong decoding (UTF-8 bytes read as cp1253 / cp1252 / latin-1).

The Korean reference card shows `μ±—λ΄‡μ˜` for `챗봇의`: UTF-8 Korean decoded as Windows-1253.
Detection is ftfy's (a maintained library, tuned on real mojibake): `ftfy.badness.is_bad` flags
character sequences that real text does not contain. ftfy's *fixer* does not undo the Greek
(cp1253) case, so we also try the round trip ourselves: text that re-encodes in one of those codecs
to bytes that are valid UTF-8 and decode to different non-ASCII text was decoded with that codec.
"""

from __future__ import annotations

import re

# Codecs that real files were wrongly decoded with, in the order we try them.
CODECS = ("cp1253", "cp1252", "latin-1")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# Two adjacent characters from Latin-1 supplement .. Greek, the cp125x punctuation block (‘ ’ “ ” • –
# — ˜ ™ …) or U+FFFD: every non-ASCII character of UTF-8 read as such a codec becomes 2-4 of them.
_SUSPECT = re.compile(r"[\u0080-\u03ff\u2010-\u2122\ufffd]{2}")


def mojibake_codec(text: str) -> str | None:
    """The codec the text looks wrongly decoded with ("cp1253", ..., or "ftfy"), or None if clean.

    Example: mojibake_codec("μ±—λ΄‡μ˜") == "cp1253"; mojibake_codec("챗봇의") is None.
    """
    if not text or not _SUSPECT.search(text):
        # Text without such a run (pure ASCII, Japanese/Korean, English with a lone ’) cannot be this
        # kind of mojibake; skipping ftfy there makes the check ~10x cheaper.
        return None
    for codec in CODECS:
        try:
            fixed = text.encode(codec).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        if fixed != text and _NON_ASCII.search(fixed):
            return codec
    from ftfy.badness import is_bad

    # U+FFFD alone means bytes were lost upstream (a model emitted invalid UTF-8), not mis-decoded:
    # ftfy counts "��" as bad, we do not (has_replacement_char reports it separately).
    return "ftfy" if is_bad(text.replace("\ufffd", "")) else None


def has_replacement_char(text: str) -> bool:
    return "\ufffd" in text


def find_mojibake(texts: dict[str, str]) -> tuple[str, str, str] | None:
    """(field, codec, excerpt) for the first damaged text among `{field: text}`, or None."""
    for field, text in texts.items():
        codec = mojibake_codec(text)
        if codec:
            m = _NON_ASCII.search(text)
            start = max(0, m.start() - 10) if m else 0
            return field, codec, text[start:start + 40]
    return None
