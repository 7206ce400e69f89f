# -*- test-case-name: tests.test_forward -*-
"""
forward: sends queries for FROM to upstream resolvers and relays their
answer, as CoreDNS's forward plugin does.

C{forward FROM TO... { except ZONES...; force_tcp; prefer_udp; policy
random|round_robin|sequential; max_concurrent N }}.  TO is C{IP[:PORT]},
C{dns://IP[:PORT]} or a resolv.conf file.  Queries go over the client's
transport (UDP unless it asked over TCP); a truncated UDP answer is asked
again over TCP.  Each upstream gets up to 2 s; the query up to 5 s in all.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import random
from dataclasses import dataclass, field

from twisted.internet import defer
from twisted.names import dns
from zope.interface import implementer

from kubernetai import options, upstream
from kubernetai.chain import IHandler, PluginError, Request, Response, ServerConfig
from kubernetai.corefile import Directive, normalize_zone

ATTEMPT_TIMEOUT = 2.0
QUERY_TIMEOUT = 5.0
POLICIES = ("random", "round_robin", "sequential")
NOT_YET = ("expire", "max_fails", "health_check", "tls", "tls_servername", "next",
           "failfast_all_unhealthy_upstreams", "max_age", "spray")


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass
class ForwardConfig:
    """One forward directive, parsed."""

    zone: str
    upstreams: list[Upstream]
    excepted: list[str] = field(default_factory=list)
    force_tcp: bool = False
    prefer_udp: bool = False
    policy: str = "random"
    max_concurrent: int = 0


@implementer(IHandler)
class Forward:
    """Relays queries under its zone to the upstreams, in the order the policy picks."""

    name = "forward"
    next = None

    def __init__(self, config: ForwardConfig, reactor) -> None:
        self.config = config
        self.reactor = reactor
        self.rotation = itertools.cycle(range(len(config.upstreams)))
        self.in_flight = 0

    def serve(self, request: Request):
        if not self._handles(request.name):
            return self.next.serve(request)
        if self.config.max_concurrent and self.in_flight >= self.config.max_concurrent:
            return Response(rcode=dns.EREFUSED)
        self.in_flight += 1
        result = defer.ensureDeferred(self._relay(request))

        def done(outcome):
            self.in_flight -= 1
            return outcome

        return result.addBoth(done)

    def _handles(self, name: str) -> bool:
        if not _in_zone(name, self.config.zone):
            return False
        return not any(_in_zone(name, excepted) for excepted in self.config.excepted)

    def ordered_upstreams(self) -> list[Upstream]:
        """The upstreams in the order this query tries them."""
        upstreams = self.config.upstreams
        if self.config.policy == "sequential":
            return list(upstreams)
        if self.config.policy == "round_robin":
            start = next(self.rotation)
            return upstreams[start:] + upstreams[:start]
        return random.sample(upstreams, len(upstreams))

    async def _relay(self, request: Request) -> Response:
        deadline = self.reactor.seconds() + QUERY_TIMEOUT
        last_error = None
        for server in self.ordered_upstreams():
            remaining = deadline - self.reactor.seconds()
            if remaining <= 0:
                break
            try:
                reply = await self._exchange(server, request, min(ATTEMPT_TIMEOUT, remaining))
            except upstream.UpstreamError as err:
                last_error = err
                continue
            return relayed_response(reply)
        raise PluginError("forward", str(last_error or "no upstream answered in time"))

    async def _exchange(self, server: Upstream, request: Request, timeout: float) -> dns.Message:
        use_tcp = self.config.force_tcp or (request.protocol == "tcp" and not self.config.prefer_udp)
        if not use_tcp:
            reply = await upstream.exchange_udp(
                self.reactor, server.host, server.port, request.packet, request.query, timeout
            )
            if not reply.trunc or self.config.prefer_udp:
                return reply
        return await upstream.exchange_tcp(
            self.reactor, server.host, server.port, request.packet, request.query, timeout
        )


def relayed_response(reply: dns.Message) -> Response:
    """The upstream's answer as ours: its rcode, flags and records, without its OPT."""
    return Response(
        rcode=reply.rCode,
        answers=reply.answers,
        authority=reply.authority,
        additional=[record for record in reply.additional if record.type != dns.OPT],
        authoritative=bool(reply.auth),
        recursion_available=bool(reply.recAv),
        truncated=bool(reply.trunc),
    )


def _in_zone(name: str, zone: str) -> bool:
    return zone == "." or name == zone or name.endswith("." + zone)


def setup(directives: list[Directive], config: ServerConfig) -> Forward:
    """C{forward FROM TO... { options }}, once per server block."""
    directive = options.only_once(directives)
    forward = parse_forward(directive)
    config.plan.append(
        f"forward {forward.zone} -> {' '.join(map(str, forward.upstreams))} (policy {forward.policy})"
    )
    return Forward(forward, config.reactor)


def parse_forward(directive: Directive) -> ForwardConfig:
    """The ForwardConfig of one C{forward} directive."""
    args = options.arg_count(directive, 2, None)
    upstreams = []
    for target in args[1:]:
        upstreams += parse_upstream(directive, target)
    if not upstreams:
        raise options.error(directive, "no nameservers found in " + " ".join(args[1:]))
    forward = ForwardConfig(zone=normalize_zone(args[0]), upstreams=_unique(upstreams))
    for option in directive.block:
        _apply_option(forward, option)
    if forward.force_tcp and forward.prefer_udp:
        raise options.error(directive, "force_tcp and prefer_udp can not be used together")
    return forward


def _apply_option(forward: ForwardConfig, option: Directive) -> None:
    if option.name == "except":
        forward.excepted += [normalize_zone(zone) for zone in options.arg_count(option, 1, None)]
    elif option.name in ("force_tcp", "prefer_udp"):
        options.arg_count(option, 0, 0)
        setattr(forward, option.name, True)
    elif option.name == "policy":
        (policy,) = options.arg_count(option, 1, 1)
        if policy not in POLICIES:
            raise options.error(option, f"unknown policy {policy!r}: expected {', '.join(POLICIES)}")
        forward.policy = policy
    elif option.name == "max_concurrent":
        (count,) = options.arg_count(option, 1, 1)
        forward.max_concurrent = options.parse_int(option, count, 0, 2**31 - 1)
    elif option.name in NOT_YET:
        raise options.error(option, f"option {option.name!r} is not supported yet")
    else:
        raise options.error(option, f"unknown option {option.name!r}")


def parse_upstream(directive: Directive, target: str) -> list[Upstream]:
    """The upstreams one TO names: an address with an optional port and dns://, or a resolv.conf."""
    address = target.removeprefix("dns://")
    if "://" in address:
        scheme = address.split("://", 1)[0]
        raise options.error(directive, f"upstream {target!r}: only dns:// upstreams are supported, not {scheme}://")
    host, port = _split_host_port(address)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if os.path.isfile(target):
            return nameservers_in(target)
        raise options.error(directive, f"not an IP address or file: {target!r}") from None
    if not 0 < port < 65536:
        raise options.error(directive, f"upstream {target!r}: port out of range")
    return [Upstream(host, port)]


def _split_host_port(address: str) -> tuple[str, int]:
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 53
    if address.count(":") == 1:
        host, port = address.split(":")
        if port.isdigit():
            return host, int(port)
    return address, 53


def nameservers_in(path: str) -> list[Upstream]:
    """The C{nameserver} lines of a resolv.conf file."""
    upstreams = []
    with open(path, encoding="utf-8", errors="replace") as resolv_conf:
        for line in resolv_conf:
            words = line.split()
            if len(words) >= 2 and words[0] == "nameserver":
                host = words[1].split("%")[0]
                try:
                    ipaddress.ip_address(host)
                except ValueError:
                    continue
                upstreams.append(Upstream(host, 53))
    return upstreams


def _unique(upstreams: list[Upstream]) -> list[Upstream]:
    return list(dict.fromkeys(upstreams))
