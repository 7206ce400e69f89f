# -*- test-case-name: tests.test_forward,tests.test_flood -*-
"""
forward: sends queries for FROM to upstream resolvers and relays their
answer, as CoreDNS's forward plugin does.

C{forward FROM TO... { ... }}; TO is C{IP[:PORT]}, C{dns://IP[:PORT]},
C{tls://IP[:PORT]} (DNS over TLS, port 853) or a resolv.conf file.  Options:
C{except}, C{force_tcp}, C{prefer_udp}, C{expire}, C{max_fails},
C{health_check DURATION [no_rec] [domain NAME]}, C{policy}, C{max_concurrent},
C{tls [CERT KEY [CA]]}, C{tls_servername}, C{next RCODE...}, C{failover RCODE...},
C{next_on_nodata}, C{failfast_all_unhealthy_upstreams}, C{max_connect_attempts},
C{max_idle_conns}, C{max_age}, C{read_timeout}.

A query tries the upstreams in policy order for up to 5 s: an upstream
whose health probes failed more than C{max_fails} times is skipped, and when
all are down a random one is asked anyway (unless failfast).  Queries go
over the client's transport; a truncated UDP answer is asked again over TCP.
Several forward lines in a block run in order, C{next} handing a query on.
"""

from __future__ import annotations

import ipaddress
import os
import random
from dataclasses import dataclass, field

from OpenSSL import crypto
from twisted.application import service
from twisted.internet import defer, ssl
from twisted.internet.error import VerifyError
from prometheus_client.core import HistogramMetricFamily
from twisted.names import dns
from zope.interface import implementer

from kubernetai import options, resolvconf, upstream
from kubernetai.chain import IHandler, PluginError, Request, Response, ServerConfig
from kubernetai.corefile import Directive, normalize_zone
from kubernetai.dnsnames import RCODES
from kubernetai.metrics import NAMESPACE, counter, instances
from kubernetai.zones import in_zone

QUERY_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 2.0
DEFAULT_EXPIRE = 10.0
DEFAULT_HEALTH_CHECK = 0.5
DEFAULT_MAX_FAILS = 2
CONNECT_ATTEMPTS_PER_UPSTREAM = 3
POLICIES = ("random", "round_robin", "sequential")
PORTS = {"dns": 53, "tls": 853}


@dataclass
class ForwardConfig:
    """One forward directive, parsed."""

    zone: str
    upstreams: list[upstream.Address]
    excepted: list[str] = field(default_factory=list)
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
    next_rcodes: list[int] = field(default_factory=list)
    failover_rcodes: list[int] = field(default_factory=list)
    next_on_nodata: bool = False
    failfast_all_unhealthy_upstreams: bool = False
    max_connect_attempts: int | None = None


class Forward:
    """One forward directive: its upstreams, in the order its policy picks, and their health."""

    def __init__(self, config: ForwardConfig, reactor) -> None:
        self.config = config
        self.reactor = reactor
        tls_options = tls_client_options(config) if any(a.transport == "tls" for a in config.upstreams) else None
        self.proxies = [
            upstream.Proxy(address, reactor, tls_options if address.transport == "tls" else None,
                           config.expire, config.max_idle_conns, config.max_age)
            for address in config.upstreams
        ]
        self.probe = upstream.health_probe(config.health_check_domain, config.health_check_recursion)
        self.next_in_rotation = 0
        self.in_flight = 0
        self.rejected = 0
        self.healthcheck_broken = 0

    def handles(self, name: str) -> bool:
        if not in_zone(name, self.config.zone):
            return False
        return not any(in_zone(name, excepted) for excepted in self.config.excepted)

    def ordered(self) -> list[upstream.Proxy]:
        """The proxies in the order this query tries them."""
        if self.config.policy == "sequential":
            return list(self.proxies)
        if self.config.policy == "round_robin":
            start = self.next_in_rotation % len(self.proxies)
            self.next_in_rotation += 1
            return self.proxies[start:] + self.proxies[:start]
        return random.sample(self.proxies, len(self.proxies))

    async def relay(self, request: Request) -> dns.Message | None:
        """The upstream's reply, or None when a C{next} rcode hands the query to the next forward."""
        config = self.config
        proxies = self.ordered()
        deadline = self.reactor.seconds() + QUERY_TIMEOUT
        attempts_left = config.max_connect_attempts
        if attempts_left is None:
            attempts_left = CONNECT_ATTEMPTS_PER_UPSTREAM * len(proxies)
        index = fails = failovers = 0
        last_error: Exception | None = None
        while self.reactor.seconds() < deadline:
            if index >= len(proxies):
                index = fails = 0
            proxy = proxies[index]
            index += 1
            if proxy.down(config.max_fails):
                fails += 1
                if fails < len(proxies):
                    continue
                self.healthcheck_broken += 1
                if config.failfast_all_unhealthy_upstreams:
                    break
                proxy = random.choice(self.proxies)
            try:
                reply = await self.exchange(proxy, request, min(config.read_timeout, deadline - self.reactor.seconds()))
            except upstream.UpstreamError as err:
                last_error = err
                if config.max_fails:
                    proxy.healthcheck(self.probe, config.health_check)
                if attempts_left:
                    attempts_left -= 1
                    if attempts_left == 0:
                        break
                if fails < len(proxies):
                    continue
                break
            if reply.rCode in config.failover_rcodes:
                failovers += 1
                if failovers < len(proxies):
                    continue
            if reply.rCode in config.next_rcodes or (config.next_on_nodata and _is_nodata(reply)):
                return None
            return reply
        raise PluginError("forward", str(last_error) if last_error else "no healthy upstream")

    async def exchange(self, proxy: upstream.Proxy, request: Request, timeout: float) -> dns.Message:
        """One exchange with C{proxy}, over TCP when forced or asked over TCP, again over TCP when truncated."""
        config = self.config
        over_tcp = config.force_tcp or (request.protocol == "tcp" and not config.prefer_udp)
        reply = await proxy.exchange(request.packet, request.query, over_tcp, timeout)
        if reply.trunc and not over_tcp:
            reply = await proxy.exchange(request.packet, request.query, True, timeout)
        return reply


@implementer(IHandler)
class ForwardChain:
    """The forward directives of a server block, in Corefile order."""

    name = "forward"
    next = None

    def __init__(self, forwards: list[Forward]) -> None:
        self.forwards = forwards

    def serve(self, request: Request):
        candidates = [forward for forward in self.forwards if forward.handles(request.name)]
        if not candidates:
            return self.next.serve(request)
        return defer.ensureDeferred(self._serve(request, candidates))

    async def _serve(self, request: Request, candidates: list[Forward]) -> Response:
        for forward in candidates:
            limit = forward.config.max_concurrent
            if limit and forward.in_flight >= limit:
                forward.rejected += 1
                raise PluginError("forward", f"concurrent queries exceeded maximum {limit}", dns.EREFUSED)
            forward.in_flight += 1
            try:
                reply = await forward.relay(request)
            finally:
                forward.in_flight -= 1
            if reply is not None:
                return relayed_response(reply)
        result = self.next.serve(request)
        return (await result) if isinstance(result, defer.Deferred) else result


class ForwardService(service.Service):
    """Stops health probes and closes kept connections with the daemon; sweeps expired ones."""

    def __init__(self, forwards: list[Forward], reactor) -> None:
        self.forwards = forwards
        self.reactor = reactor
        self.sweep = None

    def startService(self) -> None:
        super().startService()
        self._schedule()

    def _schedule(self) -> None:
        interval = min((forward.config.expire for forward in self.forwards if forward.config.expire), default=0)
        if interval:
            self.sweep = self.reactor.callLater(interval, self._sweep)

    def _sweep(self) -> None:
        for forward in self.forwards:
            for proxy in forward.proxies:
                proxy.close_idle(older_than=forward.config.expire)
        self._schedule()

    def stopService(self):
        if self.sweep is not None and self.sweep.active():
            self.sweep.cancel()
        super().stopService()
        return defer.gatherResults([proxy.stop() for forward in self.forwards for proxy in forward.proxies])


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


def _is_nodata(reply: dns.Message) -> bool:
    return reply.rCode == dns.OK and not reply.answers


def tls_client_options(config: ForwardConfig):
    """TLS client options for tls:// upstreams: the CA (else the system's), a client certificate if given."""
    cert, key, ca = (list(config.tls or ()) + [None, None, None])[:3]
    if config.tls and len(config.tls) == 1:
        cert, key, ca = None, None, config.tls[0]
    trust = ssl.Certificate.loadPEM(_read(ca)) if ca else ssl.platformTrust()
    client = ssl.PrivateCertificate.loadPEM(_read(cert) + _read(key)) if cert and key else None
    server_name = config.tls_servername or config.upstreams[0].host
    return ssl.optionsForClientTLS(server_name, trustRoot=trust, clientCertificate=client)


def _read(path: str) -> bytes:
    with open(path, "rb") as pem:
        return pem.read()


def setup(directives: list[Directive], config: ServerConfig) -> ForwardChain:
    """One Forward per C{forward} directive, in Corefile order."""
    forwards = [_forward(directive, config.reactor) for directive in directives]
    for forward in forwards:
        upstreams = " ".join(str(address) for address in forward.config.upstreams)
        config.plan.append(f"forward {forward.config.zone} -> {upstreams} (policy {forward.config.policy})")
    config.services.append(ForwardService(forwards, config.reactor))
    instances(config, "forward", forward_families).extend(forwards)
    return ForwardChain(forwards)


def _forward(directive: Directive, reactor) -> Forward:
    """The Forward of one directive; TLS files or a server name that TLS cannot use are its mistakes."""
    forward_config = parse_forward(directive)
    try:
        return Forward(forward_config, reactor)
    except (OSError, ValueError, crypto.Error, VerifyError) as err:
        raise options.error(directive, f"tls: cannot use the certificates or the server name: {err}") from None


def forward_families(forwards: list[Forward]):
    """forward's and its proxies' metrics, as CoreDNS names them, and ours: the replies not taken."""
    proxies = [proxy for forward in forwards for proxy in forward.proxies]
    durations = HistogramMetricFamily(f"{NAMESPACE}_proxy_request_duration_seconds",
                                      "Histogram of the time each request took.", labels=("proxy_name", "to", "rcode"))
    for proxy in proxies:
        for (rcode,), buckets, total in proxy.durations.samples():
            durations.add_metric(["forward", str(proxy.address), rcode], buckets, sum_value=total)
    yield durations
    yield counter(f"{NAMESPACE}_proxy_healthcheck_failures_total", "Counter of the number of failed healthchecks.",
                  ("proxy_name", "to"), ((("forward", str(p.address)), p.healthcheck_failures) for p in proxies))
    for result in ("hits", "misses"):
        yield counter(f"{NAMESPACE}_proxy_conn_cache_{result}_total", f"Counter of connection cache {result} per upstream and protocol.",
                      ("proxy_name", "to", "proto"),
                      ((("forward", str(p.address), proto), count) for p in proxies
                       for (kind, proto), count in p.connection_reuse.values.items() if kind == result))
    yield counter(f"{NAMESPACE}_forward_healthcheck_broken_total", "Counter of the number of complete failures of the healthchecks.",
                  (), [((), sum(f.healthcheck_broken for f in forwards))])
    yield counter(f"{NAMESPACE}_forward_max_concurrent_rejects_total", "Counter of the number of queries rejected because the concurrent queries were at maximum.",
                  (), [((), sum(f.rejected for f in forwards))])
    yield counter("kubernetai_forward_rejected_replies_total",
                  "Counter of upstream replies not taken, by why: malformed, wrong id, wrong question.",
                  ("to", "reason"), (((str(p.address), reason), count)
                                     for p in proxies for (reason,), count in p.rejected.values.items()))


def parse_forward(directive: Directive) -> ForwardConfig:
    """The ForwardConfig of one C{forward} directive, checked as CoreDNS checks it."""
    args = options.arg_count(directive, 2, None)
    upstreams = []
    for target in args[1:]:
        upstreams += parse_upstream(directive, target)
    if not upstreams:
        raise options.error(directive, "no nameservers found in " + " ".join(args[1:]))
    forward = ForwardConfig(zone=normalize_zone(args[0]), upstreams=list(dict.fromkeys(upstreams)))
    for option in directive.block:
        parser = OPTION_PARSERS.get(option.name)
        if parser is None:
            raise options.unknown(option, "property", OPTION_PARSERS)
        parser(forward, option)
    if forward.max_age and forward.max_age < forward.expire:
        raise options.error(directive, f"max_age ({forward.max_age}s) must not be less than expire ({forward.expire}s)")
    if forward.tls_servername:
        forward.upstreams = [
            upstream.Address(a.host, a.port, a.transport, forward.tls_servername) if a.transport == "tls" else a
            for a in forward.upstreams
        ]
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


def _flag(name: str):
    def parse(forward: ForwardConfig, option: Directive) -> None:
        options.arg_count(option, 0, 0)
        setattr(forward, name, True)

    return parse


def _duration(name: str, positive: bool = False):
    def parse(forward: ForwardConfig, option: Directive) -> None:
        (text,) = options.arg_count(option, 1, 1)
        seconds = options.parse_duration(option, text)
        if positive and seconds <= 0:
            raise options.error(option, f"{name} must be positive: {text}")
        setattr(forward, name, seconds)

    return parse


def _count(name: str):
    def parse(forward: ForwardConfig, option: Directive) -> None:
        (text,) = options.arg_count(option, 1, 1)
        setattr(forward, name, options.parse_int(option, text, 0, 2**31 - 1))

    return parse


def _rcodes(name: str, allow_noerror: bool = True):
    def parse(forward: ForwardConfig, option: Directive) -> None:
        for text in options.arg_count(option, 1, None):
            rcode = RCODES.get(text.upper())
            if rcode is None:
                raise options.error(option, f"{text} is not a valid rcode")
            if rcode == dns.OK and not allow_noerror:
                raise options.error(option, "NoError cannot be used in failover")
            getattr(forward, name).append(rcode)

    return parse


def _except(forward: ForwardConfig, option: Directive) -> None:
    forward.excepted += [normalize_zone(zone) for zone in options.arg_count(option, 1, None)]


def _policy(forward: ForwardConfig, option: Directive) -> None:
    (policy,) = options.arg_count(option, 1, 1)
    if policy not in POLICIES:
        raise options.error(option, f"unknown policy '{policy}'")
    forward.policy = policy


def _health_check(forward: ForwardConfig, option: Directive) -> None:
    args = list(options.arg_count(option, 1, None))
    forward.health_check = options.parse_duration(option, args.pop(0))
    while args:
        word = args.pop(0)
        if word == "no_rec":
            forward.health_check_recursion = False
        elif word == "domain" and args:
            forward.health_check_domain = normalize_zone(args.pop(0))
        elif word == "domain":
            raise options.error(option, "health_check: domain needs a name")
        else:
            raise options.error(option, f"health_check: unknown option {word}")


def _tls(forward: ForwardConfig, option: Directive) -> None:
    files = options.arg_count(option, 0, 3)
    for path in files:
        if not os.path.isfile(path):
            raise options.error(option, f"tls: cannot read {path}")
    forward.tls = tuple(files)


def _tls_servername(forward: ForwardConfig, option: Directive) -> None:
    (forward.tls_servername,) = options.arg_count(option, 1, 1)


def _unsupported(forward: ForwardConfig, option: Directive) -> None:
    raise options.error(option, f"option '{option.name}' is not supported by kubernetai (no DNS-over-HTTPS or hostname upstreams)")


OPTION_PARSERS = {
    "except": _except,
    "force_tcp": _flag("force_tcp"),
    "prefer_udp": _flag("prefer_udp"),
    "next_on_nodata": _flag("next_on_nodata"),
    "failfast_all_unhealthy_upstreams": _flag("failfast_all_unhealthy_upstreams"),
    "policy": _policy,
    "max_concurrent": _count("max_concurrent"),
    "max_fails": _count("max_fails"),
    "max_connect_attempts": _count("max_connect_attempts"),
    "max_idle_conns": _count("max_idle_conns"),
    "health_check": _health_check,
    "expire": _duration("expire"),
    "max_age": _duration("max_age"),
    "read_timeout": _duration("read_timeout", positive=True),
    "tls": _tls,
    "tls_servername": _tls_servername,
    "next": _rcodes("next_rcodes"),
    "failover": _rcodes("failover_rcodes", allow_noerror=False),
    "doh_method": _unsupported,
    "resolver": _unsupported,
    "source_address": _unsupported,
}
