# -*- test-case-name: tests.test_daemon,tests.test_garbage -*-
"""
From a Corefile to a running daemon: build every server block's chain, the
listeners, and the plan that C{--validate} prints; run it; and reload it
when the Corefile changes (the reload plugin) or on SIGHUP.

A reload builds the new Corefile completely before it touches anything: a
broken one is logged and refused, and the old configuration serves on.  A
good one takes over the listening sockets in place (queries in flight finish
on the chain they started on), keeps the watches of every stanza whose
options did not change, and replaces the other plugin services.
"""

from __future__ import annotations

import hashlib
import random
import signal
import sys
from dataclasses import dataclass

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from kubernetai.chain import ServerConfig, Shared, build_server
from kubernetai.corefile import CorefileError, load_corefile
from kubernetai.garbage import Collector
from kubernetai.httpservice import HTTPService
from kubernetai.metrics import NAMESPACE, counter, gauge
from kubernetai.answer import ZoneTable
from kubernetai.server import DNSService, listener_tables
from kubernetai.systemd import notify, start_watchdog

# Reloads are the reload plugin's lines in CoreDNS: kubernetai.logs prints this namespace as plugin/reload.
log = Logger(namespace="kubernetai.plugins.reload")


DNS_LISTENERS = "dns listeners"
# The longest the reactor thread waits for the GIL while a watch or index thread computes, once the
# daemon serves (CPython's switch interval; its 5 ms default was added to every query answered during
# a relist, a reload or a burst of changes).
REACTOR_GIL_WAIT = 0.0005


@dataclass
class Daemon:
    """Everything a Corefile asks for, built but not yet listening."""

    path: str
    configs: list[ServerConfig]
    tables: dict[tuple[str, int], ZoneTable]
    shared: Shared

    def plan(self) -> str:
        """What would run: blocks, listeners, plugins in run order."""
        lines = [f"Corefile {self.path}: {len(self.configs)} server block(s)"]
        for config in self.configs:
            block = config.block
            lines.append(f"server block {' '.join(block.keys)} ({block.file}:{block.line})")
            for address in config.zones:
                hosts = ", ".join(config.bind_hosts) or "all addresses"
                lines.append(f"  listens {address.scheme}://{address.zone}:{address.port} udp+tcp on {hosts}")
            lines.append("  plugins in run order:")
            lines += [f"    {step}" for step in config.plan]
        return "\n".join(lines)

    def plugin_services(self) -> list[service.IService]:
        """Every plugin's own services: per server block, then those shared by all blocks."""
        return [svc for config in self.configs for svc in config.services] + list(self.shared.http_listeners.values())

    def http_listeners(self) -> dict[tuple[str, int], HTTPService]:
        """The HTTP listeners of health, ready and prometheus, by the (host, port) the Corefile names."""
        return self.shared.http_listeners

    def startup_waits(self) -> list:
        return [wait for config in self.configs for wait in config.startup_waits]

    def checksum(self) -> str:
        """SHA512 of every file the Corefile was read from (itself and its imports)."""
        files = sorted({self.path} | {d.file for config in self.configs for d in config.block.directives})
        digest = hashlib.sha512()
        for path in files:
            with open(path, "rb") as contents:
                digest.update(contents.read())
        return digest.hexdigest()

    def service(self, reactor=None, default_port: int = 53, handle_signals: bool = False,
                worker: bool = False, feed=None) -> DaemonService:
        """The service that runs this daemon (and, with C{handle_signals}, reloads it on SIGHUP);
        C{worker}: as one of several processes (L{kubernetai.supervisor}), its stanzas fed by C{feed}."""
        return DaemonService(self, reactor, default_port, handle_signals, worker, feed)


def build_daemon(path: str, default_port: int = 53, reusable=None, fed: bool = False) -> Daemon:
    """Parse the Corefile at C{path} and build it; raises CorefileError on a mistake.

    C{reusable} maps stanza options to the running clusters a reload may keep (a list: stanzas
    with the same options each keep their own); C{fed}: in a worker, where every stanza must take
    one of them (its supervisor's feed).
    """
    blocks = load_corefile(path, default_port=default_port)
    shared = Shared(reusable={config: list(clusters) for config, clusters in (reusable or {}).items()}, fed=fed)
    configs = [build_server(block, shared) for block in blocks]
    shared.tables = listener_tables(configs)
    return Daemon(path, configs, shared.tables, shared)


def reusable_clusters(daemon: Daemon) -> dict:
    """The running clusters of C{daemon}'s stanzas by their options, for a reload to keep (L{build_daemon})."""
    clusters: dict = {}
    for stanza in daemon.shared.stanzas:
        clusters.setdefault(stanza.config, []).append(stanza.cluster)
    return clusters


def current_checksum(daemon: Daemon) -> str | None:
    """The checksum of C{daemon}'s Corefile as it is on disk now (L{Daemon.checksum}), None if it cannot be read."""
    try:
        return daemon.checksum()
    except OSError:
        return None


def next_check(shared: Shared) -> float | None:
    """Seconds until the reload plugin looks at the Corefile again (its interval, give or take its jitter),
    or None without it."""
    if shared.reload is None:
        return None
    interval, jitter = shared.reload
    return interval + random.uniform(-jitter, jitter)


class DaemonService(service.MultiService):
    """The running daemon: plugin services, DNS listeners, and reloads.

    A C{worker} binds its DNS ports with SO_REUSEPORT, beside the other workers,
    and its HTTP listeners on private ports of 127.0.0.1, which the supervisor asks;
    its stanzas are its C{feed}'s replicas (L{kubernetai.kubernetes.feed.FeedReader}),
    and it reloads when its supervisor says, never on its own reload plugin's check.
    """

    def __init__(self, daemon: Daemon, reactor=None, default_port: int = 53, handle_signals: bool = False,
                 worker: bool = False, feed=None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.daemon = daemon
        self.default_port = default_port
        self.handle_signals = handle_signals
        self.worker = worker
        self.feed = feed
        self._own_http(daemon)
        self.running_services: list[service.IService] = []
        self.dns = DNSService(daemon.tables, reactor, daemon.startup_waits(), reuse_port=worker)
        self.dns.setName("dns")
        # The stanzas' synced flags turn true on their watch threads a moment before the DNS
        # ports open on the reactor: ready only once the ports answer.
        daemon.shared.readiness.append((DNS_LISTENERS, lambda: self.dns.listening.called))
        self.failed_reloads = 0
        self.checksum = daemon.checksum()
        self.next_check = None
        self.watchdog: task.LoopingCall | None = None
        self.collector = Collector(self.reactor)
        self.switch_interval: float | None = None
        daemon.shared.metric_sources.append(self.reload_families)

    def startService(self) -> None:
        service.Service.startService(self)
        self._start_plugin_services(self.daemon.plugin_services())
        self.dns.startService()
        self.dns.listening.addCallback(self._ready)
        self._schedule_check()
        if self.handle_signals:
            signal.signal(signal.SIGHUP, lambda *_: self.reactor.callFromThread(self.reload))

    def _ready(self, result):
        # What start-up built (plugins, the stanzas' first snapshots) lives as long as the daemon: frozen
        # out of the collector's way, which from now on runs when the reactor says (kubernetai.garbage).
        self.collector.start()
        self.switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(REACTOR_GIL_WAIT)
        notify("READY=1")
        self.watchdog = start_watchdog(self.reactor)
        return result

    def _own_http(self, daemon: Daemon) -> None:
        if self.worker:
            for http in daemon.http_listeners().values():
                http.listen_privately()

    def _start_plugin_services(self, services: list) -> None:
        for plugin_service in services:
            plugin_service.startService()
        self.running_services = list(services)

    def _schedule_check(self) -> None:
        """Check the Corefile again after the reload plugin's interval, give or take its jitter."""
        if self.next_check is not None and self.next_check.active():
            self.next_check.cancel()
        self.next_check = None
        delay = next_check(self.daemon.shared)
        if delay is not None and self.running and self.feed is None:
            self.next_check = self.reactor.callLater(delay, self._check)

    def _check(self) -> None:
        self.next_check = None
        if self.changed():
            self.reload().addBoth(lambda _: self._schedule_check())
        else:
            self._schedule_check()

    @defer.inlineCallbacks
    def stopService(self):
        notify("STOPPING=1")
        if self.watchdog is not None and self.watchdog.running:
            self.watchdog.stop()
        self.collector.stop()
        if self.switch_interval is not None:
            sys.setswitchinterval(self.switch_interval)
            self.switch_interval = None
        service.Service.stopService(self)
        self._schedule_check()
        yield defer.gatherResults([defer.maybeDeferred(s.stopService) for s in reversed(self.running_services)])
        yield self.dns.stopService()

    def getServiceNamed(self, name: str):
        if name == "dns":
            return self.dns
        return super().getServiceNamed(name)

    def reload_families(self):
        """CoreDNS's reload metrics: failed reloads, and the SHA512 of the Corefile that runs."""
        yield counter(f"{NAMESPACE}_reload_failed_total", "Counter of the number of failed reload attempts.",
                      (), [((), self.failed_reloads)])
        yield gauge(f"{NAMESPACE}_reload_version_info", "A metric with a constant '1' value labeled by hash, and value which type of hash generated.",
                    ("hash", "value"), [(("sha512", self.checksum or ""), 1)])

    def changed(self) -> bool:
        """Whether the Corefile or one of its imports differs from what was last loaded (or refused)."""
        return current_checksum(self.daemon) != self.checksum


    def reload(self) -> defer.Deferred:
        """Build the Corefile anew and switch to it; the old one keeps serving if it is broken."""
        return defer.ensureDeferred(self._reload())

    async def _reload(self) -> bool:
        old = self.daemon
        fed = self.feed is not None
        clusters = self.feed.replicas_by_config() if fed else reusable_clusters(old)
        try:
            new = build_daemon(old.path, self.default_port, reusable=clusters, fed=fed)
        except (CorefileError, OSError) as err:
            self.failed_reloads += 1
            log.error("Restart failed: {error}", error=err)
            self.checksum = current_checksum(self.daemon)
            return False
        self._own_http(new)
        kept = {stanza.cluster for stanza in new.shared.stanzas} & {stanza.cluster for stanza in old.shared.stanzas}
        carried = _carry_over(old.shared.http_listeners, new.shared.http_listeners)
        stopping = [s for s in self.running_services if getattr(s, "cluster", None) not in kept and s not in carried]
        await defer.gatherResults([defer.maybeDeferred(s.stopService) for s in reversed(stopping)])
        starting = [s for s in new.plugin_services() if s not in carried]
        for plugin_service in starting:
            plugin_service.startService()
        self.running_services = new.plugin_services()
        self.dns.retable(new.tables)
        new.shared.metric_sources.append(self.reload_families)
        self.daemon = new
        self.checksum = new.checksum()
        log.info("Running configuration SHA512 = {checksum}", checksum=self.checksum)
        return True


def _carry_over(old: dict, new: dict) -> set:
    """Keep running the shared services (HTTP listeners) whose key both Corefiles have.

    Each running one takes over what its replacement was set up to serve, and stands in
    for it; the set of those kept running.
    """
    carried = set()
    for key, replacement in list(new.items()):
        running = old.get(key)
        if running is not None and hasattr(running, "take_over"):
            running.take_over(replacement)
            new[key] = running
            carried.add(running)
    return carried
