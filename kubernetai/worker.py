# -*- test-case-name: tests.test_workers,tests.test_dataplane -*-
"""
One worker of C{twistd kubernetai --workers N}: C{python -m kubernetai.worker},
started by its supervisor (L{kubernetai.supervisor}), never by hand.

It runs the daemon of the Corefile as one process would, except that it binds
its DNS sockets with C{SO_REUSEPORT} and its HTTP listeners on private ports
of 127.0.0.1, and that it watches no API server: its stanzas' data comes from
its supervisor's watches on file descriptor L{FEED_FD} (L{kubernetai.kubernetes.feed}),
whose first message, the supervisor's stanzas, it waits for before it builds
its own.  It writes its log events as JSON lines on standard output, and
on file descriptor CONTROL_FD a JSON line with its HTTP ports once started
(C{{"http": [[host, port, private port], ...]}}), then C{{"listening": true}}
once its DNS sockets are bound, and how much of its feed it has taken.  It
stops on SIGTERM, reloads when its feed says the supervisor did, and stops
when its supervisor is gone.
"""

from __future__ import annotations

import json
import os
import sys

from twisted.internet import task
from twisted.logger import Logger, LogLevel, formatEvent, globalLogBeginner
from twisted.python import usage

from kubernetai.corefile import CorefileError
from kubernetai.daemon import build_daemon
from kubernetai.kubernetes.feed import FEED_FD, FeedReader

log = Logger(namespace="kubernetai.worker")

CONTROL_FD = 3
PARENT_CHECK_INTERVAL = 1.0


def event_line(event: dict) -> str:
    """A log event as the JSON line a worker writes for its supervisor."""
    text = formatEvent(event)
    failure = event.get("log_failure")
    if failure is not None:
        text += "\n" + failure.getTraceback()
    level = event.get("log_level") or LogLevel.info
    return json.dumps({"time": event.get("log_time"), "level": level.name, "namespace": event.get("log_namespace"),
                       "system": event.get("log_system"), "text": text})


class WorkerOptions(usage.Options):
    optParameters = [
        ["conf", "c", "Corefile", "The Corefile to load."],
        ["dns.port", None, 53, "The port of server blocks whose keys name none.", int],
        ["index", None, 0, "This worker's number, from 0 (for ps to show).", int],
        ["parent", None, 0, "The supervisor's pid: stop when it is gone.", int],
    ]


class _EventLines:
    """A log observer writing each event as a line of L{event_line}."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def __call__(self, event: dict) -> None:
        self.stream.write(event_line(event) + "\n")
        self.stream.flush()


def run_worker(argv: list[str], reactor) -> int:
    """Run one worker until it is stopped; its exit status."""
    options = WorkerOptions()
    options.parseOptions(argv)
    control = os.fdopen(CONTROL_FD, "w", buffering=1)
    globalLogBeginner.beginLoggingTo([_EventLines(sys.stdout)], redirectStandardIO=False)
    feed = FeedReader(FEED_FD, reactor, lambda message: _report(control, message))
    try:
        feed.read_layout()
        daemon = build_daemon(options["conf"], default_port=options["dns.port"], reusable=feed.replicas_by_config(),
                              fed=True)
    except (CorefileError, OSError, EOFError) as err:
        log.error("cannot start: {error}", error=err)
        return 1
    root = daemon.service(reactor, options["dns.port"], handle_signals=True, worker=True, feed=feed)
    feed.start(root.reload)
    reactor.callWhenRunning(_serve, root, control, options["parent"], reactor)
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)
    reactor.run()
    return 0


def _serve(root, control, parent: int, reactor) -> None:
    """Start, tell the supervisor the private HTTP ports, then that DNS listens; stop once the supervisor is gone."""
    root.startService()
    listeners = root.daemon.http_listeners().items()
    _report(control, {"http": [[host, port, http.port.getHost().port] for (host, port), http in listeners]})
    listening = root.getServiceNamed("dns").listening
    listening.addCallback(lambda _: _report(control, {"listening": True}))
    listening.addErrback(lambda _: None)
    parent_check = task.LoopingCall(_stop_without_parent, parent, reactor)
    parent_check.clock = reactor
    parent_check.start(PARENT_CHECK_INTERVAL, now=False)


def _report(control, message: dict) -> None:
    control.write(json.dumps(message) + "\n")


def _stop_without_parent(parent: int, reactor) -> None:
    if os.getppid() != parent:
        log.warn("the supervisor (pid {pid}) is gone: stopping", pid=parent)
        reactor.stop()


if __name__ == "__main__":
    from twisted.internet import reactor

    sys.exit(run_worker(sys.argv[1:], reactor))
