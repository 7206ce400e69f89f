# -*- test-case-name: tests.test_loadbalance_loop -*-
"""
loop: detects a simple forwarding loop at start-up and halts the daemon, as
CoreDNS's loop plugin does.

C{loop} takes no arguments.  Once the daemon runs, a probe
C{<random>.<random>.ZONE. HINFO} (ZONE: the block's first zone) goes over
UDP to the block's own address (its first bind address, else the loopback
address, and its port), again every second until something answers, for up
to 30 seconds; then the plugin disables itself.  When the probe comes back
to the plugin more than twice, it logs CoreDNS's fatal message and halts:
the daemon stops, and the process exits with status 1.

A block on port 0 is not probed: its port is known only once it listens.
"""

from __future__ import annotations

import os
import secrets
import sys
from typing import Callable

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.names import dns
from zope.interface import implementer

from kubernetai import options, upstream
from kubernetai.chain import IHandler, PluginError, Request, ServerConfig
from kubernetai.corefile import Directive
from kubernetai.zones import in_zone

log = Logger(namespace="kubernetai.plugins.loop")

PROBE_FOR = 30.0
PROBE_TIMEOUT = 2.0
PROBE_INTERVAL = 1.0
MAX_SEEN = 2
TROUBLESHOOTING = "https://coredns.io/plugins/loop#troubleshooting"


@implementer(IHandler)
class Loop:
    """Counts the probe's visits while enabled; hands every query on."""

    name = "loop"
    next = None

    def __init__(self, zone: str, qname: str, address: str, halt: Callable[[], None]) -> None:
        self.zone = zone
        self.qname = qname
        self.address = address
        self.halt = halt
        self.seen = 0
        self.disabled = False

    def serve(self, request: Request):
        if request.qtype == dns.HINFO and not self.disabled and in_zone(request.name, self.zone):
            if request.name == self.qname:
                self.seen += 1
            if self.seen > MAX_SEEN:
                self._detected(request)
        return self.next.serve(request)

    def _detected(self, request: Request) -> None:
        """Log CoreDNS's fatal message and halt; the probe is not sent round again meanwhile."""
        self.disabled = True
        log.critical('Loop ({remote} -> {local}) detected for zone "{zone}", see {url}. Query: "HINFO {qname}"',
                     remote=join_host_port(*request.client), local=self.address, zone=self.zone,
                     url=TROUBLESHOOTING, qname=self.qname)
        self.halt()
        raise PluginError("loop", f"forwarding loop detected for zone {self.zone}")


class LoopProbe(service.Service):
    """Sends the probe to the block's own address until something answers or the time is up."""

    def __init__(self, handler: Loop, target: upstream.Address, reactor) -> None:
        self.handler = handler
        self.proxy = upstream.Proxy(target, reactor)
        self.reactor = reactor
        self.deadline = 0.0
        self.retry = None
        self.in_flight: defer.Deferred | None = None

    def startService(self) -> None:
        super().startService()
        self.deadline = self.reactor.seconds() + PROBE_FOR
        self.retry = self.reactor.callLater(0, self._send)

    def _send(self) -> None:
        self.retry = None
        message = dns.Message(recDes=1)
        message.addQuery(self.handler.qname.rstrip(".").encode("ascii"), dns.HINFO, dns.IN)
        self.in_flight = self.proxy.exchange(message.toStr(), message.queries[0], False, PROBE_TIMEOUT)
        self.in_flight.addCallbacks(self._answered, self._unanswered)

    def _answered(self, reply: dns.Message) -> None:
        self.handler.disabled = True

    def _unanswered(self, failure) -> None:
        failure.trap(upstream.UpstreamError, defer.CancelledError)
        self.handler.seen = 0
        if not self.running or self.reactor.seconds() + PROBE_INTERVAL >= self.deadline:
            self.handler.disabled = True
            return
        self.retry = self.reactor.callLater(PROBE_INTERVAL, self._send)

    def stopService(self):
        super().stopService()
        if self.retry is not None and self.retry.active():
            self.retry.cancel()
        if self.in_flight is not None and not self.in_flight.called:
            self.in_flight.cancel()
        return self.proxy.stop()


def exit_failed(reactor) -> Callable[[], None]:
    """What a detected loop does: stop the daemon, then exit with status 1 (CoreDNS exits at once)."""

    def halt() -> None:
        reactor.addSystemEventTrigger("after", "shutdown", _exit, 1)
        reactor.stop()

    return halt


def _exit(status: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def probe_name(zone: str) -> str:
    """C{<random>.<random>.ZONE}, each label a secure random 62-bit number."""
    labels = [str(secrets.randbelow(1 << 62)) for _ in range(2)]
    return ".".join(labels) + ("." + zone if zone != "." else ".")


def probe_target(config: ServerConfig) -> upstream.Address:
    """Where the block listens: its first bind address (loopback for a wildcard or none), its first port."""
    host = config.bind_hosts[0] if config.bind_hosts else ""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return upstream.Address(host, config.zones[0].port)


def join_host_port(host: str, port: int) -> str:
    """C{host:port} as Go's net.JoinHostPort writes it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def setup(directives: list[Directive], config: ServerConfig) -> Loop:
    """C{loop}, once per block and without arguments; probes the block's first zone."""
    directive = options.only_once(directives)
    options.arg_count(directive, 0, 0)
    options.no_block(directive)
    zone = config.zones[0].zone
    target = probe_target(config)
    address = join_host_port(config.bind_hosts[0] if config.bind_hosts else "", target.port)
    handler = Loop(zone, probe_name(zone), address, exit_failed(config.reactor))
    if target.port:
        config.services.append(LoopProbe(handler, target, config.reactor))
        config.plan.append(f"loop (probe HINFO {handler.qname} to {target} at start-up)")
    else:
        handler.disabled = True
        config.plan.append("loop (port 0: no probe)")
    return handler
