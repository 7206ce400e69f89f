# -*- test-case-name: tests.test_chain,tests.test_kubernetes_config -*-
"""
Helpers every plugin's setup uses to read its Corefile directive: argument
counts, Go-style durations, numbers, and errors that name file and line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Callable, TypeVar

from kubernetai.corefile import CorefileError, Directive

from kubernetai.zones import parse_key

Config = TypeVar("Config")
# How every plugin reads one option line: (the option, the config so far) -> the config with it, a
# new frozen dataclass (dataclasses.replace), or a CorefileError at the option's line.
OptionParser = Callable[[Directive, Config], Config]

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def error(directive: Directive, message: str) -> CorefileError:
    """A CorefileError at C{directive}'s line (the chain prefixes the plugin's name)."""
    return CorefileError(directive.file, directive.line, message)


def unknown(directive: Directive, what: str, known: Iterable[str]) -> CorefileError:
    """C{unknown WHAT 'NAME'} at C{directive}'s line, with the nearest known name, or all of them."""
    return error(directive, f"unknown {what} {directive.name!r}: {suggestion(directive.name, known)}")


def suggestion(name: str, known: Iterable[str]) -> str:
    """C{did you mean 'fallthrough'?} for a near miss of a known name, else C{expected a, b or c}."""
    known = list(known)
    nearest = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if nearest:
        return f"did you mean {nearest[0]!r}?"
    if len(known) == 1:
        return f"expected {known[0]}"
    return f"expected {', '.join(known[:-1])} or {known[-1]}"


def only_once(directives: list[Directive]) -> Directive:
    """The single directive of a plugin that may appear once per server block."""
    if len(directives) > 1:
        raise error(directives[1], "this plugin can only be used once per server block")
    return directives[0]


def arg_count(directive: Directive, minimum: int, maximum: int | None) -> tuple[str, ...]:
    """C{directive}'s arguments, if their number is within bounds."""
    count = len(directive.args)
    if count < minimum:
        raise error(directive, f"expected at least {minimum} argument(s), got {count}")
    if maximum is not None and count > maximum:
        extra = directive.args[maximum]
        raise error(directive, f"unexpected argument {extra!r}: expected at most {maximum}")
    return directive.args


def zones(directive: Directive, args, server_zones) -> tuple[str, ...]:
    """The zones C{args} name as server-block keys do (a CIDR stands for its reverse zones), else C{server_zones}."""
    if not args:
        return tuple(server_zones)
    found: list[str] = []
    for arg in args:
        try:
            found += [address.zone for address in parse_key(arg)]
        except ValueError as err:
            raise error(directive, str(err)) from None
    return tuple(found)


def no_block(directive: Directive) -> None:
    """Refuse a C{{ }} block on a directive that takes none."""
    if directive.block:
        raise error(directive.block[0], f"unknown option {directive.block[0].name!r}")


def parse_duration(directive: Directive, text: str) -> float:
    """Seconds in a Go duration such as C{5s}, C{1m30s} or C{250ms}."""
    position = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise error(directive, f"invalid duration {text!r}: expected a number with a unit, like 5s or 250ms")
    return seconds


def parse_int(directive: Directive, text: str, minimum: int, maximum: int) -> int:
    """An integer within [minimum, maximum]."""
    try:
        value = int(text)
    except ValueError:
        raise error(directive, f"invalid number {text!r}: expected an integer") from None
    if not minimum <= value <= maximum:
        raise error(directive, f"{value} out of range: expected {minimum} to {maximum}")
    return value


def parse_options(directive: Directive, config: Config, parsers: dict[str, OptionParser],
                  what: str = "property") -> Config:
    """C{config} with every option line of C{directive}'s block applied by its parser, in order;
    an option no parser knows is refused as an unknown C{what}, with a "did you mean"."""
    for option in directive.block:
        parse = parsers.get(option.name)
        if parse is None:
            raise unknown(option, what, parsers)
        no_block(option)
        config = parse(option, config)
    return config


def flag(field: str) -> OptionParser:
    """An option without arguments that sets C{field} true."""

    def parse(option: Directive, config):
        arg_count(option, 0, 0)
        return replace(config, **{field: True})

    return parse


def count(field: str, maximum: int = 2**31 - 1) -> OptionParser:
    """An option with one integer argument from 0 to C{maximum}, for C{field}."""

    def parse(option: Directive, config):
        (text,) = arg_count(option, 1, 1)
        return replace(config, **{field: parse_int(option, text, 0, maximum)})

    return parse


def duration(field: str, positive: bool = False) -> OptionParser:
    """An option with one Go duration argument (more than zero if C{positive}), for C{field}."""

    def parse(option: Directive, config):
        (text,) = arg_count(option, 1, 1)
        seconds = parse_duration(option, text)
        if positive and seconds <= 0:
            raise error(option, f"{field} must be positive: {text}")
        return replace(config, **{field: seconds})

    return parse

