# -*- test-case-name: tests.test_cache_rules -*-
"""
The cache plugin's configuration: one C{cache [TTL] [ZONES...] { ... }}
directive parsed and checked as CoreDNS's plugin/cache/setup.go does, with
its defaults, ranges and messages.

Pure: a L{Directive} in, a L{CacheConfig} out (durations in seconds), or a
CorefileError at the line of the option that is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from kubernetai import options
from kubernetai.corefile import CorefileError, Directive
from kubernetai.zones import normalize_zone

SUCCESS, DENIAL = "success", "denial"
DEFAULT_CAPACITY = 10000
MAX_TTL = 3600
MAX_DENIAL_TTL = 1800
MIN_TTL = 5
MAX_SERVFAIL_TTL = 300.0
MAX_STALE_RECHECK = 300.0
DEFAULT_STALE_UP_TO = 3600.0
_INTEGER = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class TableConfig:
    """One table's capacity and the bounds on how long an entry lives in it."""

    capacity: int
    max_ttl: int
    min_ttl: int = MIN_TTL


@dataclass(frozen=True)
class CacheConfig:
    """A C{cache} directive, parsed; durations in seconds."""

    zones: tuple[str, ...]
    success: TableConfig = field(default_factory=lambda: TableConfig(DEFAULT_CAPACITY, MAX_TTL))
    denial: TableConfig = field(default_factory=lambda: TableConfig(DEFAULT_CAPACITY, MAX_DENIAL_TTL))
    servfail_ttl: float = float(MIN_TTL)
    prefetch: int = 0
    prefetch_window: float = 60.0
    prefetch_percentage: int = 10
    stale_up_to: float = 0.0
    verify_stale: bool = False
    verify_timeout: float = 0.0
    stale_ttl: int = 0
    stale_recheck: float = 0.0
    prefer_positive: bool = False
    success_disabled: tuple[str, ...] = ()
    denial_disabled: tuple[str, ...] = ()
    keepttl: bool = False


def parse_cache(directive: Directive, server_zones) -> CacheConfig:
    """The CacheConfig of one C{cache} directive in a block serving C{server_zones}."""
    args = list(directive.args)
    ttl = None
    if args and _INTEGER.fullmatch(args[0]):
        ttl = int(args.pop(0))
        if ttl <= 0:
            raise options.error(directive, f"cache TTL can not be zero or negative: {ttl}")
    cache = CacheConfig(zones=options.zones(directive, args, server_zones))
    if ttl is not None:
        cache = replace(cache, success=replace(cache.success, max_ttl=ttl), denial=replace(cache.denial, max_ttl=ttl))
    cache = options.parse_options(directive, cache, _OPTION_PARSERS, "option")
    policies = [option for option in directive.block if option.name == "serve_stale_policy"]
    if len(policies) > 1:
        raise options.error(policies[1], "serve_stale_policy can only be specified once")
    if policies and not any(option.name == "serve_stale" for option in directive.block):
        raise options.error(policies[0], "serve_stale_policy requires serve_stale")
    return cache


def _parse_table(option: Directive, cache: CacheConfig) -> CacheConfig:
    """C{success|denial CAPACITY [TTL] [MINTTL]}."""
    args = options.arg_count(option, 1, 3)
    table = getattr(cache, option.name)
    table = replace(table, capacity=_integer(option, args[0]))
    if len(args) > 1:
        table = replace(table, max_ttl=_integer(option, args[1]))
        if table.max_ttl <= 0:
            raise options.error(option, f"cache TTL can not be zero or negative: {table.max_ttl}")
    if len(args) > 2:
        table = replace(table, min_ttl=_integer(option, args[2]))
        if table.min_ttl < 0:
            raise options.error(option, f"cache min TTL can not be negative: {table.min_ttl}")
    return replace(cache, **{option.name: table})


def _parse_prefetch(option: Directive, cache: CacheConfig) -> CacheConfig:
    """C{prefetch AMOUNT [DURATION] [PERCENTAGE%]}."""
    args = options.arg_count(option, 1, 3)
    amount = _integer(option, args[0])
    if amount < 0:
        raise options.error(option, f"prefetch amount should be positive: {amount}")
    cache = replace(cache, prefetch=amount)
    if len(args) > 1:
        cache = replace(cache, prefetch_window=_duration(option, args[1]))
    if len(args) > 2:
        if not args[2].endswith("%"):
            raise options.error(option, f"last character of percentage should be `%`, but is: {args[2][-1:]!r}")
        percentage = _integer(option, args[2][:-1])
        if not 10 <= percentage <= 90:
            raise options.error(option, f"percentage should fall in range [10, 90]: {percentage}")
        cache = replace(cache, prefetch_percentage=percentage)
    return cache


def _parse_serve_stale(option: Directive, cache: CacheConfig) -> CacheConfig:
    """C{serve_stale [DURATION] [immediate [RESPONSE_TTL [RECHECK]] | verify [TIMEOUT [RESPONSE_TTL [RECHECK]]]]}."""
    args = list(options.arg_count(option, 0, 5))
    stale = {"stale_up_to": DEFAULT_STALE_UP_TO, "verify_stale": False, "verify_timeout": 0.0, "stale_ttl": 0,
             "stale_recheck": 0.0}
    if args:
        stale["stale_up_to"] = _duration(option, args[0])
        if stale["stale_up_to"] < 0:
            raise options.error(option, "invalid negative duration for serve_stale")
    if len(args) > 1:
        mode = args[1].lower()
        if mode not in ("immediate", "verify"):
            raise options.error(option, f"invalid value for serve_stale refresh mode: {mode}")
        stale["verify_stale"] = mode == "verify"
    rest = args[2:]
    if stale["verify_stale"] and rest:
        stale["verify_timeout"] = _duration(option, rest.pop(0), "invalid serve_stale verify timeout: ")
        if stale["verify_timeout"] < 0:
            raise options.error(option, "invalid negative timeout for serve_stale verify")
    elif len(rest) > 2:
        raise options.error(option, f"unexpected argument {rest[2]!r}: expected at most 4 with immediate")
    if rest:
        stale_ttl = _duration(option, rest[0], "invalid serve_stale response TTL: ")
        if stale_ttl < 0:
            raise options.error(option, "invalid negative response TTL for serve_stale")
        if round(stale_ttl * 1e9) % 1_000_000_000:
            raise options.error(option, "serve_stale response TTL must be a whole number of seconds")
        if stale_ttl > 2**32 - 1:
            raise options.error(option, "serve_stale response TTL exceeds the DNS TTL range")
        stale["stale_ttl"] = round(stale_ttl)
    if len(rest) > 1:
        stale["stale_recheck"] = _duration(option, rest[1], "invalid serve_stale failure recheck: ")
        if stale["stale_recheck"] < 0:
            raise options.error(option, "invalid negative failure recheck for serve_stale")
        if stale["stale_recheck"] > MAX_STALE_RECHECK:
            raise options.error(option, "serve_stale failure recheck cannot exceed 5 minutes")
    return replace(cache, **stale)


def _parse_serve_stale_policy(option: Directive, cache: CacheConfig) -> CacheConfig:
    """C{serve_stale_policy prefer_positive}."""
    (policy,) = options.arg_count(option, 1, 1)
    if policy.lower() != "prefer_positive":
        raise options.error(option, f"invalid serve_stale_policy: {policy}")
    return replace(cache, prefer_positive=True)


def _parse_servfail(option: Directive, cache: CacheConfig) -> CacheConfig:
    """C{servfail DURATION}, at most 5 minutes (RFC 2308)."""
    (text,) = options.arg_count(option, 1, 1)
    servfail_ttl = _duration(option, text)
    if servfail_ttl < 0:
        raise options.error(option, "invalid negative ttl for servfail")
    if servfail_ttl > MAX_SERVFAIL_TTL:
        raise options.error(option, "caching SERVFAIL responses over 5 minutes is not permitted")
    return replace(cache, servfail_ttl=servfail_ttl)


def _parse_disable(option: Directive, cache: CacheConfig) -> CacheConfig:
    """C{disable success|denial [ZONES...]}: every zone when none is named."""
    args = options.arg_count(option, 1, None)
    zones = tuple(normalize_zone(zone) for zone in args[1:]) or (".",)
    if args[0] not in (SUCCESS, DENIAL):
        raise options.error(option, f'cache type for disable must be "{SUCCESS}" or "{DENIAL}"')
    return replace(cache, **{f"{args[0]}_disabled": zones})


_OPTION_PARSERS = {
    SUCCESS: _parse_table,
    DENIAL: _parse_table,
    "prefetch": _parse_prefetch,
    "serve_stale": _parse_serve_stale,
    "serve_stale_policy": _parse_serve_stale_policy,
    "servfail": _parse_servfail,
    "disable": _parse_disable,
    "keepttl": options.flag("keepttl"),
}


def _integer(option: Directive, text: str) -> int:
    """A decimal integer as Go's C{strconv.Atoi} reads it."""
    if not _INTEGER.fullmatch(text):
        raise options.error(option, f"invalid number {text!r}: expected an integer")
    return int(text)


def _duration(option: Directive, text: str, context: str = "") -> float:
    """Seconds in a Go duration, signed, C{0} allowed without a unit."""
    body = text[1:] if text[:1] in "+-" else text
    sign = -1.0 if text.startswith("-") else 1.0
    if body == "0":
        return 0.0
    try:
        return sign * options.parse_duration(option, body)
    except CorefileError:
        raise options.error(
            option, f"{context}invalid duration {text!r}: expected a number with a unit, like 5s or 250ms"
        ) from None
