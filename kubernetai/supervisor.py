# -*- test-case-name: tests.test_workers,tests.test_dataplane -*-
"""
One DNS port served by N processes: C{twistd kubernetai -c Corefile --workers N}.

With N > 1 the twistd process is a supervisor.  It builds the Corefile, to
refuse a broken one as a single process would, to learn the HTTP addresses of
health, ready, prometheus and explain, and for its stanzas' watches; then it
runs N workers (C{python -m kubernetai.worker}), each a daemon with its own
index, chain and caches.  Workers bind every DNS socket, UDP and TCP, with
C{SO_REUSEPORT}; the kernel spreads queries over them by a hash of the
client's address and port, so one client socket always reaches one worker.

How workers get their data: the supervisor lists and watches each stanza's
cluster once, with the threads a single process runs, and streams what its
index applies to every worker (L{kubernetai.kubernetes.feed}): a worker that
starts, or starts again, gets a snapshot of every stanza, then the changes in
order; each worker's stanza is synced once it holds the supervisor's synced
data.  So every API server sees what one process asks (the list + watch
connections of each stanza, its LISTs at start and after a lost watch
history), whatever N is; each worker still holds an index of its own (and the
supervisor one more).  A crashed worker loses nothing the others answer; a
worker too far behind its feed gets a fresh snapshot once it has caught up.
N = the number of cores (C{--workers auto}), no more.

Workers listen for HTTP on private ports of 127.0.0.1 and tell the supervisor
which (L{kubernetai.worker} says how), and when DNS listens; the
supervisor binds the configured addresses and answers by asking every worker
the same path: C{/health} is OK when every worker's is; C{/ready} is OK when
every worker's is, else 503 with the names not ready (C{worker N} for a worker
that does not answer), and C{/ready?verbose} has each worker's pid, state and
own verbose view; C{/metrics} merges every worker's page, each sample labelled
C{worker="N"}, with the supervisor's process metrics, C{kubernetai_workers}
and C{kubernetai_worker_restarts_total}; C{/explain} is the first worker's
that answers, its number in C{X-Kubernetai-Worker}.  A worker that does not answer
within ASK_TIMEOUT counts as not healthy and not ready, and its metrics are
left out of that scrape.  The watches' own metrics (REST client requests, lists,
restarts) are the supervisor's, without a worker label.

The supervisor relays its workers' log events (JSON lines on their standard
output) into its own log, C{worker N} added to their system; restarts a worker
that exits while it runs, after a delay that doubles up to RESTART_DELAY_MAX;
reloads the Corefile on SIGHUP or the reload plugin's check (stanzas whose
options changed get new watches, the others keep theirs), then has every worker
reload it over its feed (a change of the HTTP addresses of health, ready or
prometheus needs a restart); on stop sends
SIGTERM to every worker and SIGKILL to those still running STOP_GRACE later;
and tells systemd READY=1 once every worker listens.  If a worker exits before
every worker has listened once (a port in use, say), the supervisor stops with
status 1.  A worker whose supervisor is gone stops.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from twisted.application import service
from twisted.internet import defer, protocol
from twisted.internet.error import ProcessExitedAlready
from twisted.logger import InvalidLogLevelError, Logger, LogLevel, globalLogPublisher
from twisted.web.client import readBody

from kubernetai.corefile import CorefileError
from kubernetai.daemon import Daemon, build_daemon, current_checksum, next_check, reusable_clusters
from kubernetai.httpservice import PRIVATE_HOST, HTTPService
from kubernetai.kubernetes.feed import FEED_FD, Hub, Outlet
from kubernetai.metrics import counter, gauge
from kubernetai.plugins.kubernetai import stanza_families
from kubernetai.plugins.loop import exit_failed
from kubernetai.supervisorhttp import ANSWERING, ASK_TIMEOUT, worker_agent
from kubernetai.systemd import notify, start_watchdog
from kubernetai.worker import CONTROL_FD

log = Logger(namespace="kubernetai.supervisor")

STOP_GRACE = 20.0
RESTART_DELAY_FIRST = 0.5
RESTART_DELAY_MAX = 30.0
# Only the supervisor talks to systemd (the unit's NotifyAccess=main).
SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def worker_count(text: str) -> int:
    """C{--workers}: a number from 1, or C{auto}, one per CPU this process may run on."""
    if text == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    count = int(text)
    if count < 1:
        raise ValueError(f"{count} workers: at least 1")
    return count


worker_count.coerceDoc = "A number from 1, or auto (one per usable CPU)."


def check_shareable(daemon: Daemon) -> None:
    """Refuse a DNS port 0, which would give each worker a port of its own."""
    for config in daemon.configs:
        if any(address.port == 0 for address in config.zones):
            raise CorefileError(config.block.file, config.block.line, "port 0 cannot be shared by workers")


def describe(count: int) -> str:
    """The line C{--validate} adds with C{--workers}."""
    return (f"{count} workers: each serves every DNS port (SO_REUSEPORT) with its own index and caches, fed by "
            "the supervisor's watches; the supervisor serves the HTTP addresses")


def restart_delay(crashes_in_a_row: int) -> float:
    """How long to wait before starting a worker again that exited that many times in a row."""
    return min(RESTART_DELAY_MAX, RESTART_DELAY_FIRST * 2 ** (crashes_in_a_row - 1))


def relayed_event(line: str, index: int, level: LogLevel = LogLevel.info) -> dict:
    """The event to log for one line from worker C{index}: a line of L{kubernetai.worker.event_line}, or any
    other text at C{level}."""
    try:
        fields = json.loads(line)
    except ValueError:
        fields = None
    if not isinstance(fields, dict) or "text" not in fields:
        fields = {"text": line, "level": level.name}
    namespace = fields.get("namespace") or log.namespace
    level = _level(fields.get("level"), level)
    system = fields.get("system") or f"{namespace}#{level.name}"
    return {"log_time": fields.get("time") or time.time(), "log_level": level, "log_namespace": namespace,
            "log_system": f"{system} worker {index}", "log_format": "{text}", "text": fields["text"], "worker": index}


def _level(name, default: LogLevel) -> LogLevel:
    try:
        return LogLevel.levelWithName(name)
    except InvalidLogLevelError:
        return default


class Lines:
    """Bytes in, complete lines out."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[str]:
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines]


class WorkerProcess(protocol.ProcessProtocol):
    """One worker as its supervisor sees it: its process, what it reported, how often it exited."""

    def __init__(self, index: int, supervisor: Supervisor) -> None:
        self.index = index
        self.supervisor = supervisor
        self.pid: int | None = None
        self.http_ports: dict[tuple[str, int], int] = {}
        self.listening = False
        self.restarts = 0
        self.crashes_in_a_row = 0
        self.lines: dict[int, Lines] = {}
        self.outlet: Outlet | None = None
        self._ended: list[defer.Deferred] = []

    def connectionMade(self) -> None:
        self.pid = self.transport.pid
        self.http_ports, self.listening = {}, False
        self.lines = {1: Lines(), 2: Lines(), CONTROL_FD: Lines()}
        self.transport.closeStdin()
        transport = self.transport
        self.outlet = Outlet(self.supervisor.hub, lambda data: transport.writeToChild(FEED_FD, data),
                             f"worker {self.index} (pid {self.pid})")
        self.supervisor.hub.attach(self.outlet)

    def childDataReceived(self, fd: int, data: bytes) -> None:
        for line in self.lines[fd].feed(data):
            if fd == CONTROL_FD:
                self._control(json.loads(line))
            elif line:
                globalLogPublisher(relayed_event(line, self.index, LogLevel.info if fd == 1 else LogLevel.error))

    def _control(self, message: dict) -> None:
        if "taken" in message:
            self.outlet.taken(message["taken"])
        if "resync" in message:
            self.outlet.resync(message["resync"])
        if "http" in message:
            self.http_ports = {(host, port): private for host, port, private in message["http"]}
        if message.get("listening"):
            self.listening = True
            self.crashes_in_a_row = 0
            self.supervisor.worker_listening(self)

    def processEnded(self, reason) -> None:
        pid, self.pid = self.pid, None
        self.http_ports, listened, self.listening = {}, self.listening, False
        self.supervisor.hub.detach(self.outlet)
        ended, self._ended = self._ended, []
        for waiting in ended:
            waiting.callback(None)
        self.supervisor.worker_ended(self, pid, listened, exit_text(reason.value))

    def when_ended(self) -> defer.Deferred:
        """Fires once the running process (if any) has ended."""
        if self.pid is None:
            return defer.succeed(None)
        waiting = defer.Deferred()
        self._ended.append(waiting)
        return waiting

    def signal(self, name: str) -> None:
        if self.pid is not None:
            try:
                self.transport.signalProcess(name)
            except ProcessExitedAlready:
                pass

    def report(self, ready) -> dict:
        """This worker in the supervisor's C{/ready?verbose}, with its own verbose view C{ready}."""
        return {"worker": self.index, "pid": self.pid, "listening": self.listening, "restarts": self.restarts,
                "ready": ready}


def exit_text(ended) -> str:
    """How a process ended: C{exit status N} or C{signal N}."""
    if getattr(ended, "signal", None) is not None:
        return f"signal {ended.signal}"
    return f"exit status {getattr(ended, 'exitCode', None)}"


class Supervisor(service.MultiService):
    """Runs C{count} workers of the Corefile at C{path} and serves the HTTP addresses C{daemon} names."""

    def __init__(self, daemon: Daemon, count: int, path: str, dns_port: int, reactor=None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.daemon = daemon
        self.path = os.path.abspath(path)
        self.dns_port = dns_port
        self.hub = Hub(reactor)
        self.checksum = daemon.checksum()
        self.next_check = None
        self.workers = [WorkerProcess(index, self) for index in range(count)]
        self.restarting: dict[int, object] = {}
        self.ready = False
        self.watchdog = None
        self.agent, self.pool = worker_agent(reactor)
        self.collectors = [ProcessCollector(registry=None), PlatformCollector(registry=None)]
        for (host, port), listener in daemon.http_listeners().items():
            self._serve_http(host, port, listener.paths.children)

    def _serve_http(self, host: str, port: int, paths: dict) -> None:
        http = HTTPService(host, port, self.reactor)
        for name, answering in ANSWERING.items():
            if name.encode() in paths:
                http.attach(name, lambda answering=answering: answering(self, (host, port)))
        http.hold_stop(self.all_ended)
        http.setServiceParent(self)

    def startService(self) -> None:
        super().startService()
        self._start_watches(self.daemon)
        self.hub.start()
        for worker in self.workers:
            self.spawn(worker)
        self._schedule_check()
        signal.signal(signal.SIGHUP, lambda *_: self.reactor.callFromThread(self.hangup))

    def _start_watches(self, daemon: Daemon) -> None:
        """Start the watches of every stanza (those a reload kept run already), and feed them to the workers."""
        for stanza in daemon.shared.stanzas:
            stanza.start()
        self.hub.publish(daemon.shared.stanzas)

    def spawn(self, worker: WorkerProcess) -> None:
        self.restarting.pop(worker.index, None)
        arguments = ["--conf", self.path, "--dns.port", str(self.dns_port), "--index", str(worker.index),
                     "--parent", str(os.getpid())]
        environment = {name: value for name, value in os.environ.items() if name not in SYSTEMD_VARIABLES}
        self.reactor.spawnProcess(worker, sys.executable, [sys.executable, "-m", "kubernetai.worker", *arguments],
                                  env=environment, path=os.getcwd(),
                                  childFDs={0: "w", 1: "r", 2: "r", CONTROL_FD: "r", FEED_FD: "w"})
        log.info("worker {index} started, pid {pid}", index=worker.index, pid=worker.pid)

    def worker_listening(self, worker: WorkerProcess) -> None:
        log.info("worker {index} (pid {pid}) listening", index=worker.index, pid=worker.pid)
        if not self.ready and all(other.listening for other in self.workers):
            self.ready = True
            log.info("all {count} workers listening", count=len(self.workers))
            notify("READY=1")
            self.watchdog = start_watchdog(self.reactor)

    def worker_ended(self, worker: WorkerProcess, pid: int, listened: bool, how: str) -> None:
        if not self.running:
            log.info("worker {index} (pid {pid}) stopped: {how}", index=worker.index, pid=pid, how=how)
            return
        if not self.ready and not listened:
            log.error("worker {index} (pid {pid}) ended before it listened ({how}): stopping",
                      index=worker.index, pid=pid, how=how)
            exit_failed(self.reactor)()
            return
        worker.restarts += 1
        worker.crashes_in_a_row += 1
        delay = restart_delay(worker.crashes_in_a_row)
        log.warn("worker {index} (pid {pid}) ended ({how}): starting it again in {delay}s",
                 index=worker.index, pid=pid, how=how, delay=delay)
        self.restarting[worker.index] = self.reactor.callLater(delay, self.spawn, worker)

    def hangup(self) -> None:
        log.info("SIGHUP: every worker reloads the Corefile")
        self.reload()

    def reload(self) -> bool:
        """Build the Corefile anew: stanzas whose options changed get new watches, the others keep theirs;
        then every worker reloads it, fed the same.  A broken Corefile is logged and changes nothing."""
        old = self.daemon
        try:
            new = build_daemon(self.path, self.dns_port, reusable=reusable_clusters(old))
            check_shareable(new)
        except (CorefileError, OSError) as err:
            log.error("Restart failed: {error}", error=err)
            self.checksum = current_checksum(old)
            return False
        self.checksum = current_checksum(new)
        kept = {stanza.cluster for stanza in new.shared.stanzas}
        for stanza in old.shared.stanzas:
            if stanza.cluster not in kept:
                stanza.cluster.stop()
        self.daemon = new
        self._start_watches(new)
        self._schedule_check()
        return True

    def _schedule_check(self) -> None:
        """With the reload plugin (of the Corefile running now): look at the Corefile again after its
        interval, give or take its jitter."""
        if self.next_check is not None and self.next_check.active():
            self.next_check.cancel()
        self.next_check = None
        delay = next_check(self.daemon.shared)
        if delay is not None and self.running:
            self.next_check = self.reactor.callLater(delay, self._check)

    def _check(self) -> None:
        self.next_check = None
        if current_checksum(self.daemon) == self.checksum or not self.reload():
            self._schedule_check()

    def all_ended(self) -> defer.Deferred:
        return defer.gatherResults([worker.when_ended() for worker in self.workers])

    def stopService(self):
        notify("STOPPING=1")
        if self.watchdog is not None and self.watchdog.running:
            self.watchdog.stop()
        for pending in self.restarting.values():
            pending.cancel()
        self.restarting.clear()
        if self.next_check is not None and self.next_check.active():
            self.next_check.cancel()
        self.hub.stop()
        for stanza in self.daemon.shared.stanzas:
            stanza.cluster.stop()
        listeners_stopped = super().stopService()
        ended = self.all_ended()
        for worker in self.workers:
            worker.signal("TERM")
        killing = self.reactor.callLater(STOP_GRACE, self._kill_all)
        ended.addBoth(lambda result: killing.cancel() if killing.active() else None)
        ended.addCallback(lambda _: self.pool.closeCachedConnections())
        return defer.gatherResults([ended, listeners_stopped])

    def _kill_all(self) -> None:
        for worker in self.workers:
            if worker.pid is not None:
                log.warn("worker {index} (pid {pid}) still running after {grace}s: killing it",
                         index=worker.index, pid=worker.pid, grace=STOP_GRACE)
                worker.signal("KILL")

    def ask(self, worker: WorkerProcess, address: tuple[str, int], path: str) -> defer.Deferred:
        """(status code, body) of C{worker}'s answer to C{path} for C{address}, or None if it gave none in time."""
        port = worker.http_ports.get(address)
        if port is None:
            return defer.succeed(None)
        asking = defer.ensureDeferred(self._get(f"http://{PRIVATE_HOST}:{port}{path}"))
        asking.addTimeout(ASK_TIMEOUT, self.reactor)
        return asking.addErrback(lambda _: None)

    async def _get(self, url: str) -> tuple[int, bytes]:
        response = await self.agent.request(b"GET", url.encode("ascii"))
        return response.code, await readBody(response)

    def ask_all(self, address: tuple[str, int], path: str) -> defer.Deferred:
        """Every worker's answer to C{path} for C{address}, in worker order (see L{ask})."""
        return defer.gatherResults([self.ask(worker, address, path) for worker in self.workers])

    def own_families(self):
        """The supervisor's own metrics: its process's, and its workers'."""
        running = sum(1 for worker in self.workers if worker.pid is not None)
        yield gauge("kubernetai_workers", "Worker processes running.", (), [((), running)])
        yield counter("kubernetai_worker_restarts_total", "Times a worker was started again after it ended unexpectedly.",
                      ("worker",), [((str(worker.index),), worker.restarts) for worker in self.workers])
        for collector in self.collectors:
            yield from collector.collect()
        yield from stanza_families(self.daemon.shared.plugin_instances.get("kubernetai", []))

