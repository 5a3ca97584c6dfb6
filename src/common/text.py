"""Text that leaves this system (SNS subjects and messages, Slack, email) made safe for where it
goes, whatever an execution's error or cause holds: control characters, astral characters,
limits counted the way the receiver counts them. Pure."""

from __future__ import annotations

import re
import unicodedata

ELLIPSIS = "…"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def utf16_len(text: str) -> int:
    """Length as JavaScript (and Slack's limits) count it: astral characters count twice."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8", errors="replace"))


def without_controls(text: str) -> str:
    """Control characters removed, tab and line breaks kept (for multi-line text)."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def one_line(text: str) -> str:
    """One line: every control character and line break a space, runs of spaces one."""
    return " ".join(_ANY_CONTROL.sub(" ", text).split())


def cut(text: str, limit: int, *, units: str = "utf16", ellipsis: str = ELLIPSIS) -> str:
    """`text` within `limit` (UTF-16 units, UTF-8 bytes or code points), cut with an ellipsis,
    never between a character and the combining marks that follow it."""
    measure = {"utf16": utf16_len, "utf8": utf8_len, "chars": len}[units]
    if measure(text) <= limit:
        return text
    room = limit - measure(ellipsis)
    if room <= 0:
        return ""
    # Longest prefix that fits: measure grows monotonically with the prefix.
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(text[:mid]) <= room:
            lo = mid
        else:
            hi = mid - 1
    while 0 < lo < len(text) and unicodedata.combining(text[lo]):
        lo -= 1
    return text[:lo] + ellipsis


def ascii_line(text: str, limit: int) -> str:
    """One printable-ASCII line within `limit` characters (what SNS accepts as a subject): accents
    dropped, anything else non-ASCII a `?`."""
    folded = unicodedata.normalize("NFKD", one_line(text))
    ascii_only = "".join(
        ch if 32 <= ord(ch) < 127 else ("" if unicodedata.combining(ch) else "?") for ch in folded
    )
    return cut(" ".join(ascii_only.split()), limit, units="chars", ellipsis="...")
