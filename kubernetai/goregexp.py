# -*- test-case-name: tests.test_gotemplate -*-
"""
Go's regexp syntax (RE2) on Python's re: a pattern Go takes is compiled
with Python's meaning checked to be the same, or refused.

Python reads most of RE2 alike.  Where it reads Go's text differently,
we translate (C{(?<name>...)} to C{(?P<name>...)}, C{\\z} to C{\\Z}) or
refuse: POSIX classes (C{[[:alpha:]]}, a character set to Python),
C{{,n}} (a repeat to Python, text to Go), and what Go refuses but Python
takes (look-arounds, back-references, possessive and atomic forms,
conditionals, flags other than C{i}, C{m}, C{s}, repeats over 1000).
Patterns run with C{re.ASCII}: C{\\d}, C{\\w}, C{\\s} and C{\\b} are
ASCII-only, as in Go.
"""

from __future__ import annotations

import re
import warnings

MAX_REPEAT = 1000  # Go's regexp/syntax limit on {n,m}
_REPEAT = re.compile(r"\{(\d*)(,?)(\d*)\}")
_FLAGS = frozenset("ims-")
# Go's escapes that Python reads alike (\\p, \\Q...\\E and \\C are Go's too, but not Python's).
_GO_ESCAPE_LETTERS = frozenset("aftnrvxAbBzdDsSwW0")


class GoRegexpError(ValueError):
    """A pattern Go refuses, or one Python would read otherwise."""


def compile_go(pattern: str) -> re.Pattern:
    """Python's compiled equivalent of Go's regexp C{pattern}."""
    try:
        with warnings.catch_warnings():
            # Nested sets and set operations a future Python may read: today's reading, literal, is Go's.
            warnings.simplefilter("ignore", FutureWarning)
            return re.compile(_translated(pattern), re.ASCII)
    except re.error as error:
        raise GoRegexpError(str(error)) from None


def _translated(pattern: str) -> str:
    out: list[str] = []
    position = 0
    length = len(pattern)
    while position < length:
        char = pattern[position]
        if char == "\\":
            escape = pattern[position: position + 2]
            out.append(_escape(escape))
            position += 2
        elif char == "[":
            end = _class_end(pattern, position)
            out.append(pattern[position:end])
            position = end
        elif char == "(" and pattern.startswith("?", position + 1):
            text, position = _group_opening(pattern, position)
            out.append(text)
        elif char == "{":
            repeat = _REPEAT.match(pattern, position)
            if repeat is not None:
                _check_repeat(repeat)
                position = repeat.end()
                out.append(repeat.group())
                _check_not_possessive(pattern, position)
            else:
                out.append(char)
                position += 1
        else:
            out.append(char)
            position += 1
            if char in "*+?":
                _check_not_possessive(pattern, position)
    return "".join(out)


def _escape(escape: str) -> str:
    """Python's text for Go's escape C{escape}: Go's letters and punctuation only (C{\\z} is Python's C{\\Z})."""
    letter = escape[1:]
    if letter == "z":
        return r"\Z"
    if letter.isdigit() and letter != "0":
        raise GoRegexpError(f"invalid escape sequence: {escape} (Go has no back-references; octal: \\0NN)")
    if letter.isalnum() and letter not in _GO_ESCAPE_LETTERS:
        raise GoRegexpError(f"invalid or unsupported escape sequence: {escape}")
    return escape


def _class_end(pattern: str, start: int) -> int:
    """The index after the C{]} closing the character class opened at C{start}; refuses POSIX classes."""
    position = start + 1
    if pattern.startswith("^", position):
        position += 1
    if pattern.startswith("]", position):
        position += 1
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            _escape(pattern[position: position + 2])
            position += 2
            continue
        if char == "[" and pattern.startswith(":", position + 1):
            raise GoRegexpError("POSIX character classes ([[:name:]]) are not supported by kubernetai")
        if char == "]":
            return position + 1
        position += 1
    raise GoRegexpError(f"missing closing ]: {pattern[start:]}")


def _group_opening(pattern: str, start: int) -> tuple[str, int]:
    """The Python text of the C{(?...} group opening at C{start}, and where its contents start."""
    rest = pattern[start + 2:]
    if rest.startswith("P<"):
        return "(?P<", start + 4
    if rest.startswith("<") and not rest.startswith(("<=", "<!")):
        return "(?P<", start + 3
    flags = re.match(r"[a-zA-Z-]*[:)]", rest)
    if flags is None or not set(flags.group()[:-1]) <= _FLAGS:
        shown = flags.group() if flags else rest[:2]
        raise GoRegexpError(f"invalid or unsupported Perl syntax: (?{shown}")
    return "(?", start + 2


def _check_repeat(repeat: re.Match) -> None:
    low, comma, high = repeat.groups()
    if not low:
        raise GoRegexpError(f"the repeat {repeat.group()} is not supported by kubernetai (Go reads it as text)")
    if int(low) > MAX_REPEAT or high and int(high) > MAX_REPEAT:
        raise GoRegexpError(f"invalid repeat count: {repeat.group()}")


def _check_not_possessive(pattern: str, position: int) -> None:
    if pattern.startswith("+", position):
        raise GoRegexpError(f"invalid nested repetition operator: {pattern[max(0, position - 1): position + 1]}")
