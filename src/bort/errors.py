"""The one exception type that user-facing commands turn into a one-line error, and how that line is made."""

from __future__ import annotations

import re

MAX_LINE = 1000  # characters of an error line: a message that quotes a huge value (a YAML bomb's) is cut here
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a newline, a carriage return, an escape sequence: shown as \n, \r, \x1b


class BortError(Exception):
    """A problem the user can fix: the message names the problem and the fix.

    The CLI prints ``bort: error: <message>`` and exits non-zero, with no traceback.
    Library callers can catch it like any other exception.
    """


class TrainingDiverged(BortError):
    """The loss became NaN/inf or grew far beyond its running minimum."""


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """``text`` as one printable line of at most about ``limit`` characters: control characters escaped, the rest cut.

    Every error line the CLI prints goes through here, so a path holding a newline, a library's
    multi-line message or a message quoting a huge value still makes exactly one line.
    """
    head = text[: limit * 4]  # escaping at most quadruples a character: never escape more than we could show
    flat = _CONTROL.sub(lambda m: repr(m.group())[1:-1], head.strip())
    if len(flat) <= limit and len(head) == len(text):
        return flat
    return f"{flat[:limit]}… (cut: {len(text):,} characters in all)"


def shown(value: object) -> str:
    """A path or user text quoted for a message, with escapes (``'a\\nb'``): what the user gave, on one line."""
    return repr(str(value))
