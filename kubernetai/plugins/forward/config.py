# -*- test-case-name: tests.test_forward -*-
"""
forward's options: one C{forward FROM TO... { ... }} directive to a
L{ForwardConfig}, with CoreDNS's defaults and errors.  Pure.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, replace

from twisted.names import dns

from kubernetai import options, resolvconf, upstream
from kubernetai.corefile import Directive
from kubernetai.dnsnames import RCODES
from kubernetai.zones import normalize_zone

DEFAULT_READ_TIMEOUT = 2.0
DEFAULT_EXPIRE = 10.0
DEFAULT_HEALTH_CHECK = 0.5
DEFAULT_MAX_FAILS = 2
POLICIES = ("random", "round_robin", "sequential")
PORTS = {"dns": 53, "tls": 853}


@dataclass(frozen=True)
class ForwardConfig:
    """One forward directive, parsed."""

    zone: str
    upstreams: tuple[upstream.Address, ...]
    excepted: tuple[str, ...] = ()
    force_tcp: bool = False
    prefer_udp: bool = False
    policy: str = "random"
    max_concurrent: int = 0
    max_fails: int = DEFAULT_MAX_FAILS
    health_check: float = DEFAULT_HEALTH_CHECK
    health_check_recursion: bool = True
    health_check_domain: str = "."
    expire: float = DEFAULT_EXPIRE
    max_age: float = 0.0
    max_idle_conns: int = 0
    read_timeout: float = DEFAULT_READ_TIMEOUT
    tls: tuple[str, ...] | None = None
    tls_servername: str | None = None
    next_rcodes: tuple[int, ...] = ()
    failover_rcodes: tuple[int, ...] = ()
    next_on_nodata: bool = False
    failfast_all_unhealthy_upstreams: bool = False
    max_connect_attempts: int | None = None


def parse_forward(directive: Directive) -> ForwardConfig:
    """The ForwardConfig of one C{forward} directive, checked as CoreDNS checks it."""
    args = options.arg_count(directive, 2, None)
    upstreams = []
    for target in args[1:]:
        upstreams += parse_upstream(directive, target)
    if not upstreams:
        raise options.error(directive, "no nameservers found in " + " ".join(args[1:]))
    forward = ForwardConfig(zone=normalize_zone(args[0]), upstreams=tuple(dict.fromkeys(upstreams)))
    forward = options.parse_options(directive, forward, OPTION_PARSERS)
    if forward.max_age and forward.max_age < forward.expire:
        raise options.error(directive, f"max_age ({forward.max_age}s) must not be less than expire ({forward.expire}s)")
    if forward.tls_servername:
        forward = replace(forward, upstreams=tuple(
            upstream.Address(a.host, a.port, a.transport, forward.tls_servername) if a.transport == "tls" else a
            for a in forward.upstreams))
    return forward


def parse_upstream(directive: Directive, target: str) -> list[upstream.Address]:
    """The upstreams one TO names: [dns://|tls://]IP[:PORT], or a resolv.conf file."""
    transport, address = "dns", target
    if "://" in target:
        transport, address = target.split("://", 1)
        if transport not in PORTS:
            raise options.error(directive, f"'{transport}' is not supported as a destination protocol in forward: {target}")
    host, port = _split_host_port(address, PORTS[transport])
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if transport == "dns" and os.path.isfile(target):
            return nameservers_in(target)
        raise options.error(directive, f"not an IP address or file: {target!r}") from None
    if port is None or not 0 < port < 65536:
        raise options.error(directive, f"upstream {target!r}: invalid port")
    return [upstream.Address(host, port, transport)]


def _split_host_port(address: str, default_port: int) -> tuple[str, int | None]:
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        if not rest:
            return host, default_port
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if address.count(":") == 1:
        host, port = address.split(":")
        return host, int(port) if port.isdigit() else None
    return address, default_port


def nameservers_in(path: str) -> list[upstream.Address]:
    """The C{nameserver} lines of a resolv.conf file that name an IP address."""
    found = []
    for nameserver in resolvconf.read(path).nameservers:
        host = nameserver.split("%")[0]
        try:
            ipaddress.ip_address(host)
        except ValueError:
            continue
        found.append(upstream.Address(host, 53))
    return found


def _rcodes(name: str, allow_noerror: bool = True) -> options.OptionParser:
    def parse(option: Directive, forward: ForwardConfig) -> ForwardConfig:
        rcodes = []
        for text in options.arg_count(option, 1, None):
            rcode = RCODES.get(text.upper())
            if rcode is None:
                raise options.error(option, f"{text} is not a valid rcode")
            if rcode == dns.OK and not allow_noerror:
                raise options.error(option, "NoError cannot be used in failover")
            rcodes.append(rcode)
        return replace(forward, **{name: getattr(forward, name) + tuple(rcodes)})

    return parse


def _except(option: Directive, forward: ForwardConfig) -> ForwardConfig:
    zones = tuple(normalize_zone(zone) for zone in options.arg_count(option, 1, None))
    return replace(forward, excepted=forward.excepted + zones)


def _policy(option: Directive, forward: ForwardConfig) -> ForwardConfig:
    (policy,) = options.arg_count(option, 1, 1)
    if policy not in POLICIES:
        raise options.error(option, f"unknown policy '{policy}'")
    return replace(forward, policy=policy)


def _health_check(option: Directive, forward: ForwardConfig) -> ForwardConfig:
    args = list(options.arg_count(option, 1, None))
    forward = replace(forward, health_check=options.parse_duration(option, args.pop(0)))
    while args:
        word = args.pop(0)
        if word == "no_rec":
            forward = replace(forward, health_check_recursion=False)
        elif word == "domain" and args:
            forward = replace(forward, health_check_domain=normalize_zone(args.pop(0)))
        elif word == "domain":
            raise options.error(option, "health_check: domain needs a name")
        else:
            raise options.error(option, f"health_check: unknown option {word}")
    return forward


def _tls(option: Directive, forward: ForwardConfig) -> ForwardConfig:
    files = options.arg_count(option, 0, 3)
    for path in files:
        if not os.path.isfile(path):
            raise options.error(option, f"tls: cannot read {path}")
    return replace(forward, tls=tuple(files))


def _tls_servername(option: Directive, forward: ForwardConfig) -> ForwardConfig:
    (servername,) = options.arg_count(option, 1, 1)
    return replace(forward, tls_servername=servername)


def _unsupported(option: Directive, forward: ForwardConfig) -> ForwardConfig:
    raise options.error(option, f"option '{option.name}' is not supported by kubernetai (no DNS-over-HTTPS or hostname upstreams)")


OPTION_PARSERS = {
    "except": _except,
    "force_tcp": options.flag("force_tcp"),
    "prefer_udp": options.flag("prefer_udp"),
    "next_on_nodata": options.flag("next_on_nodata"),
    "failfast_all_unhealthy_upstreams": options.flag("failfast_all_unhealthy_upstreams"),
    "policy": _policy,
    "max_concurrent": options.count("max_concurrent"),
    "max_fails": options.count("max_fails"),
    "max_connect_attempts": options.count("max_connect_attempts"),
    "max_idle_conns": options.count("max_idle_conns"),
    "health_check": _health_check,
    "expire": options.duration("expire"),
    "max_age": options.duration("max_age"),
    "read_timeout": options.duration("read_timeout", positive=True),
    "tls": _tls,
    "tls_servername": _tls_servername,
    "next": _rcodes("next_rcodes"),
    "failover": _rcodes("failover_rcodes", allow_noerror=False),
    "doh_method": _unsupported,
    "resolver": _unsupported,
    "source_address": _unsupported,
}
