# -*- test-case-name: tests.test_forward,tests.test_flood -*-
"""
forward's handler: the upstreams of one directive tried in policy order,
their answer relayed, and the service that stops probes and closes kept
connections with the daemon.
"""

from __future__ import annotations

import random

from twisted.application import service
from twisted.internet import defer, ssl
from twisted.names import dns
from twisted.python.failure import Failure
from zope.interface import implementer

from kubernetai import upstream
from kubernetai.chain import IHandler, PluginError, Request, Response
from kubernetai.plugins.forward.config import ForwardConfig
from kubernetai.zones import in_zone, in_zones

QUERY_TIMEOUT = 5.0
CONNECT_ATTEMPTS_PER_UPSTREAM = 3


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
        excepted = self.config.excepted
        return in_zone(name, self.config.zone) and not (excepted and in_zones(name, excepted))

    def ordered(self) -> list[upstream.Proxy]:
        """The proxies in the order this query tries them."""
        if self.config.policy == "sequential" or len(self.proxies) == 1:
            return list(self.proxies)
        if self.config.policy == "round_robin":
            start = self.next_in_rotation % len(self.proxies)
            self.next_in_rotation += 1
            return self.proxies[start:] + self.proxies[:start]
        return random.sample(self.proxies, len(self.proxies))

    def relay(self, request: Request) -> defer.Deferred:
        """A Deferred firing with the upstream's reply, or None when a C{next} rcode hands the query to the
        next forward; failing with PluginError when no upstream answers."""
        return _Relay(self, request).attempt()

    def over_tcp(self, request: Request) -> bool:
        """Whether C{request} goes to the upstream over TCP first: when forced, or asked over TCP."""
        return self.config.force_tcp or (request.protocol == "tcp" and not self.config.prefer_udp)


class _Relay:
    """One query tried on a forward's upstreams in its policy's order, as CoreDNS's forward loops: upstreams
    that are down skipped, the next tried after an error or a C{failover} rcode, for up to QUERY_TIMEOUT.
    Each step runs from the callback of the exchange before it (coroutines cost a forwarded query more
    than its upstream's answer did)."""

    def __init__(self, forward: Forward, request: Request) -> None:
        self.forward = forward
        self.request = request
        self.proxies = forward.ordered()
        self.deadline = forward.reactor.seconds() + QUERY_TIMEOUT
        attempts = forward.config.max_connect_attempts
        self.attempts_left = CONNECT_ATTEMPTS_PER_UPSTREAM * len(self.proxies) if attempts is None else attempts
        self.index = self.fails = self.failovers = 0
        self.last_error: Exception | None = None

    def attempt(self) -> defer.Deferred:
        """The next exchange, with what follows its reply or its failure."""
        forward, config, proxies = self.forward, self.forward.config, self.proxies
        while forward.reactor.seconds() < self.deadline:
            if self.index >= len(proxies):
                self.index = self.fails = 0
            proxy = proxies[self.index]
            self.index += 1
            if proxy.down(config.max_fails):
                self.fails += 1
                if self.fails < len(proxies):
                    continue
                forward.healthcheck_broken += 1
                if config.failfast_all_unhealthy_upstreams:
                    break
                proxy = random.choice(forward.proxies)
            timeout = min(config.read_timeout, self.deadline - forward.reactor.seconds())
            return self.exchange(proxy, forward.over_tcp(self.request), timeout)
        return defer.fail(self.given_up())

    def exchange(self, proxy: upstream.Proxy, over_tcp: bool, timeout: float) -> defer.Deferred:
        result = proxy.exchange(self.request.packet, self.request.query, over_tcp, timeout)
        return result.addCallbacks(self.answered, self.failed, callbackArgs=(proxy, over_tcp, timeout),
                                   errbackArgs=(proxy,))

    def answered(self, reply: dns.Message, proxy: upstream.Proxy, over_tcp: bool, timeout: float):
        if reply.trunc and not over_tcp:
            return self.exchange(proxy, True, timeout)
        config = self.forward.config
        if reply.rCode in config.failover_rcodes:
            self.failovers += 1
            if self.failovers < len(self.proxies):
                return self.attempt()
        if reply.rCode in config.next_rcodes or (config.next_on_nodata and _is_nodata(reply)):
            return None
        return reply

    def failed(self, failure, proxy: upstream.Proxy):
        failure.trap(upstream.UpstreamError)
        self.last_error = failure.value
        config = self.forward.config
        if config.max_fails:
            proxy.healthcheck(self.forward.probe, config.health_check)
        if self.attempts_left:
            self.attempts_left -= 1
            if self.attempts_left == 0:
                raise self.given_up()
        if self.fails < len(self.proxies):
            return self.attempt()
        raise self.given_up()

    def given_up(self) -> PluginError:
        return PluginError("forward", str(self.last_error) if self.last_error else "no healthy upstream")


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
        return self._relay_through(request, candidates, 0)

    def _relay_through(self, request: Request, candidates: list[Forward], index: int) -> defer.Deferred:
        """The reply of C{candidates[index]}, or of those after it (then the next plugin) when it hands
        the query on."""
        forward = candidates[index]
        limit = forward.config.max_concurrent
        if limit and forward.in_flight >= limit:
            forward.rejected += 1
            return defer.fail(PluginError("forward", f"concurrent queries exceeded maximum {limit}", dns.EREFUSED))
        forward.in_flight += 1
        try:
            relayed = forward.relay(request)
        except BaseException:
            forward.in_flight -= 1
            raise
        return relayed.addBoth(self._relayed, request, candidates, index)

    def _relayed(self, reply: dns.Message | None | Failure, request: Request, candidates: list[Forward], index: int):
        candidates[index].in_flight -= 1
        if isinstance(reply, Failure):
            return reply
        if reply is not None:
            return relayed_response(reply)
        if index + 1 < len(candidates):
            return self._relay_through(request, candidates, index + 1)
        return self.next.serve(request)


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
