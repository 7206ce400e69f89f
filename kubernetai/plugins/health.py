# -*- test-case-name: tests.test_health_ready -*-
"""
health: C{GET /health} answers 200 C{OK} while the process serves, as
CoreDNS's health plugin does.

C{health [ADDRESS] { lameduck DURATION }}, ADDRESS C{:8080} by default.
With C{lameduck}, stopping the daemon first waits DURATION while DNS and
C{/health} (still 200 OK) keep answering, so that clients and load
balancers move away before the listeners close; C{/ready} stops answering
OK at once (503 "Shutting down" on a shared address, closed on its own).

Each address has one listener, whichever server blocks name it (CoreDNS's
are process wide too); several addresses each serve the same health.  Two
C{health} lines in one block serve both addresses (CoreDNS keeps the
last).  With several lameducks the daemon waits the longest (CoreDNS runs
them one after another and waits their sum).  A reload keeps the listener
of an address both Corefiles name, so it waits no lameduck.
CoreDNS's self-check metrics (C{coredns_health_request_*}) are not kept.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.web import resource

from kubernetai import options
from kubernetai.chain import ServerConfig
from kubernetai.corefile import Directive
from kubernetai.httpservice import listener, parse_address, plain

log = Logger(namespace="kubernetai.plugins.health")

DEFAULT_ADDRESS = ":8080"


@dataclass(frozen=True)
class HealthConfig:
    """One C{health} directive: where it listens, and how long its lameduck is (0 for none)."""

    address: str
    host: str
    port: int
    lameduck: float = 0.0
    lameduck_text: str = ""

    def describe(self) -> str:
        return f"health {self.address}" + (f" (lameduck {self.lameduck_text})" if self.lameduck else "")


class Health(resource.Resource):
    """C{/health}: always 200 OK, whatever the method, lameduck included."""

    def render(self, request) -> bytes:
        return plain(request, 200, "OK")


def setup(directives: list[Directive], config: ServerConfig) -> None:
    """Attach C{/health} to the listener of each directive's address; health has no handler."""
    for directive in directives:
        health = parse(directive)
        http = listener(config, health.host, health.port)
        http.attach("health", Health)
        if health.lameduck > 0:
            http.hold_stop(lambda health=health: lameduck(config.reactor, health))
        config.plan.append(health.describe())
    return None


def parse(directive: Directive) -> HealthConfig:
    """C{health [ADDRESS] { lameduck DURATION }}."""
    args = options.arg_count(directive, 0, 1)
    address = args[0] if args else DEFAULT_ADDRESS
    host, port = parse_address(directive, address)
    health = HealthConfig(address, host, port)
    for option in directive.block:
        if option.name != "lameduck":
            raise options.unknown(option, "property", ("lameduck",))
        options.no_block(option)
        (text,) = options.arg_count(option, 1, 1)
        health = dataclasses.replace(health, lameduck=options.parse_duration(option, text), lameduck_text=text)
    return health


def lameduck(reactor, health: HealthConfig) -> defer.Deferred:
    """Fires once C{health}'s lameduck has passed."""
    log.info("Going into lameduck mode for {duration}", duration=health.lameduck_text)
    return task.deferLater(reactor, health.lameduck, lambda: None)
