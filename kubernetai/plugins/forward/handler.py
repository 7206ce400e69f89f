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
from zope.interface import implementer

from kubernetai import upstream
from kubernetai.chain import IHandler, PluginError, Request, Response
from kubernetai.plugins.forward.config import ForwardConfig
from kubernetai.zones import in_zone

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
        if not in_zone(name, self.config.zone):
            return False
        return not any(in_zone(name, excepted) for excepted in self.config.excepted)

    def ordered(self) -> list[upstream.Proxy]:
        """The proxies in the order this query tries them."""
        if self.config.policy == "sequential" or len(self.proxies) == 1:
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
