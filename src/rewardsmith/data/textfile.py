"""One way to open and decode a data file; every stage that reads one comes through here.

    text = read_text(path)                      # the whole file: gunzipped, decoded, checked
    for number, line in iter_lines(path): ...   # the same, streamed line by line (files larger than memory)

- `.gz` files are gunzipped here, by zlib, so that a stream that breaks (a download or copy cut
  short, a flipped byte) is a `GzipBroken` error naming the compressed byte and the line where it
  broke, never an `EOFError`. The lines before the break are used only when the caller passes
  `on_cut` (CLI `--keep-partial`, `load_pairs(keep_partial=True)`): it is told of the break, so
  that the break is counted, and the incomplete last line is left out.
- Text is UTF-8; a byte-order mark (Windows editors write one) is skipped, at the start of the file
  and of any line (files joined with `cat`). Other encodings are refused, with the encoding
  charset_normalizer guesses and an `iconv` command.
- NUL bytes are refused: valid JSON, CSV or text never holds a raw NUL, so one means the file is
  UTF-16/32 without a byte-order mark, binary, or padded with zeros by a crash; stripping them
  would hide which. (`"\\u0000"` written as an escape inside a JSON string is text, and kept.)
- Lines end at "\\n" alone ("\\r\\n" too: the "\\r" is dropped), never at U+2028, U+2029, U+0085
  or the other characters `str.splitlines()` breaks at: they are legal inside a JSON string.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, NoReturn

from rewardsmith.errors import RewardsmithError

BLOCK = 1 << 20  # bytes read (compressed or not) at a time
GZIP_MAGIC = b"\x1f\x8b"
STRIP_NUL = "tr -d '\\000'"  # the shell command that deletes NUL bytes


class GzipBroken(RewardsmithError):
    """A gzip stream that breaks before its end: cut short, or corrupt at `offset`.

    offset: compressed byte where it broke (the file's size when it was cut short);
    line:   the line the break falls in (1-based): lines before it are whole, it and the rest are lost.
    """

    def __init__(self, path: str, offset: int, size: int, line: int, why: str):
        self.path, self.offset, self.size, self.line, self.why = path, offset, size, line, why
        super().__init__(
            f"{path}:{line}: {self.detail}. The file is damaged or was not completely written, copied or "
            f"downloaded: fetch it again, or use the {line - 1} whole lines before line {line} with --keep-partial "
            "(keep_partial=True in Python)")

    @property
    def detail(self) -> str:
        """What broke where, without the fix: the text a report counts the break under."""
        return f"the gzip stream breaks at byte {self.offset} of {self.size} ({self.why})"


OnCut = Callable[[GzipBroken], None]


def read_text(path: str | Path, on_cut: OnCut | None = None) -> str:
    """The whole file as text: gunzipped if .gz, UTF-8 (a byte-order mark skipped), no NUL bytes.

    A broken gzip stream raises GzipBroken, or, with `on_cut`, is passed to it and the text up to
    the last whole line is returned. Raises RewardsmithError for text that is not UTF-8 or holds NUL.
    """
    path = str(path)
    blocks: list[bytes] = []
    try:
        for block in _blocks(path):
            blocks.append(block)
    except GzipBroken as e:
        if on_cut is None:
            raise
        on_cut(e)
        whole = b"".join(blocks)
        blocks = [whole[: whole.rfind(b"\n") + 1]]  # the incomplete last line goes with the break
    return decode(b"".join(blocks), path)


def iter_lines(path: str | Path, on_cut: OnCut | None = None) -> Iterator[tuple[int, str]]:
    """(line number, text without its line end) for every line, streamed; blank lines included, so
    numbers are the file's. Breaks and refusals as in `read_text`; a line that is not UTF-8 or holds
    NUL stops the run, naming the line."""
    path = str(path)
    number = 0
    pending: list[bytes] = []  # the start of a line that runs on into the next block
    try:
        for block in _blocks(path):
            parts = block.split(b"\n")
            pending.append(parts[0])
            if len(parts) == 1:
                continue
            parts[0] = b"".join(pending)
            pending = [parts.pop()]
            for raw in parts:
                number += 1
                yield number, decode_line(raw, path, number)
    except GzipBroken as e:
        if on_cut is None:
            raise
        on_cut(e)  # the incomplete last line (pending) goes with the break
        return
    last = b"".join(pending)
    if last:
        yield number + 1, decode_line(last, path, number + 1)


def check_gzip(path: str | Path) -> None:
    """Raise GzipBroken when a .gz file's stream breaks anywhere: callers that write as they read
    (score, label) check first, so that nothing is written from a file they will refuse."""
    for _ in _blocks(str(path)):
        pass


def decode(raw: bytes, path: str) -> str:
    """Bytes of a whole file as text (see the module docstring); raises RewardsmithError naming the line."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        _refuse_nul(raw, path, raw.count(b"\n", 0, nul) + 1, nul - raw.rfind(b"\n", 0, nul))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        _refuse_encoding(raw, path, raw.count(b"\n", 0, e.start) + 1, raw[e.start:e.start + 4])


def decode_line(raw: bytes, path: str, number: int) -> str:
    """One line's bytes (without "\\n") as text: a final "\\r" and a leading byte-order mark dropped."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        _refuse_nul(raw, path, number, nul + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        _refuse_encoding(raw, path, number, raw[e.start:e.start + 4])
    return text.removesuffix("\r").removeprefix("\ufeff")


def guess_encoding(raw: bytes) -> str:
    """charset_normalizer's best guess at the encoding of some bytes ("cp949", ...), or "unknown"."""
    from charset_normalizer import from_bytes

    best = from_bytes(raw[:200_000]).best()
    return best.encoding if best is not None else "unknown"


def _refuse_encoding(raw: bytes, path: str, line: int, bad: bytes) -> NoReturn:
    encoding = guess_encoding(raw)
    raise RewardsmithError(
        f"{path}:{line}: not UTF-8 text (bytes {bad!r}); the encoding looks like {encoding}. Convert it first, "
        f"e.g. `{_fix(path, f'iconv -f {_iconv_name(encoding)} -t utf-8')}`") from None


def _refuse_nul(raw: bytes, path: str, line: int, column: int) -> NoReturn:
    encoding = guess_encoding(raw)
    if encoding.startswith(("utf_16", "utf_32")):
        fix = f"it looks like {encoding} text: convert it, e.g. `{_fix(path, f'iconv -f {_iconv_name(encoding)} -t utf-8')}`"
    else:
        fix = (f"if the zeros are padding left by an interrupted write, remove them: `{_fix(path, STRIP_NUL)}`; "
               "a binary file is no data file")
    raise RewardsmithError(f"{path}:{line}: NUL byte at column {column}; UTF-8 text never holds one: {fix}")


def _iconv_name(encoding: str) -> str:
    """charset_normalizer's (Python's) codec name as iconv spells it: utf_16_le -> UTF-16LE, euc_kr -> EUC-KR."""
    name = re.sub(r"^(UTF-(?:16|32))-([LB]E)$", r"\1\2", encoding.upper().replace("_", "-"))
    return {"LATIN-1": "ISO-8859-1"}.get(name, name)


def _fix(path: str, command: str) -> str:
    """A shell line that runs `command` over the file's (gunzipped) bytes into fixed.<suffix>."""
    name = Path(path).name.lower()
    fixed = "fixed" + (Path(name.removesuffix(".gz")).suffix or ".txt")
    if name.endswith(".gz"):
        return f"gzip -dc {path} | {command} > {fixed}"
    return f"{command} < {path} > {fixed}"


def _blocks(path: str) -> Iterator[bytes]:
    """The file's bytes in blocks, gunzipped when the name ends in .gz."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, also when the caller stops early
    except OSError as e:
        raise RewardsmithError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        if not path.lower().endswith(".gz"):
            while block := f.read(BLOCK):
                yield block
            return
        yield from _gunzip(path, f)


def _gunzip(path: str, f: BinaryIO) -> Iterator[bytes]:
    """Decompressed blocks of every gzip member in `f` (concatenated members, as `cat a.gz b.gz`
    makes, are one stream; zero padding between or after them is skipped, as gzip does)."""
    size = os.fstat(f.fileno()).st_size
    at = 0  # compressed offset of buf[0]
    newlines = 0  # in what was decompressed so far: the line a break falls in is newlines + 1
    buf = b""
    d = None  # the decompressor of the member being read; None between members
    while True:
        if not buf:
            buf = f.read(BLOCK)
            if not buf:
                break
        if d is None:
            skipped = len(buf) - len(buf := buf.lstrip(b"\x00"))
            at += skipped
            if not buf:
                continue
            if len(buf) < len(GZIP_MAGIC):
                buf += f.read(1)
            if not buf.startswith(GZIP_MAGIC):
                if at == 0:
                    raise RewardsmithError(f"{path}: not a valid gzip file (it does not start with the gzip magic "
                                           "bytes); rename it without .gz if it is plain text")
                raise GzipBroken(path, at, size, newlines + 1, "bytes that are not gzip after the end of a stream")
            d = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer (CRC and length checked)
        before = d.copy()
        try:
            out = d.decompress(buf)
        except zlib.error as e:
            offset, good = _where_it_breaks(before, buf)
            if good:
                yield good  # the text before the bad byte: used only when the caller keeps a partial file
            why = ("corrupt: the stream's checksum does not match, so bytes before it are damaged too"
                   if "check" in str(e) else f"corrupt: {e}")  # zlib: "incorrect data check" / "... length check"
            raise GzipBroken(path, at + offset, size, newlines + good.count(b"\n") + 1, why) from None
        newlines += out.count(b"\n")
        if out:
            yield out
        if d.eof:
            used = len(buf) - len(d.unused_data)
            at, buf, d = at + used, d.unused_data, None
        else:
            at, buf = at + len(buf), b""
    if d is not None:
        raise GzipBroken(path, size, size, newlines + 1, "cut short: the file ends before the end-of-stream marker")


def _where_it_breaks(d: zlib._Decompress, buf: bytes) -> tuple[int, bytes]:
    """(offset in buf, text decompressed before it) of the byte zlib rejects, found by feeding buf one
    byte at a time to the decompressor as it was before buf: slow, but only on the error path."""
    good = []
    for i in range(len(buf)):
        try:
            good.append(d.decompress(buf[i:i + 1]))
        except zlib.error:
            return i, b"".join(good)
    return len(buf), b"".join(good)
