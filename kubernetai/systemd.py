# -*- test-case-name: tests.test_daemon -*-
"""
Telling systemd how the daemon is doing (sd_notify): READY=1 once every
listener is bound (so once every stanza has synced or waited its
startup_timeout), STOPPING=1 on the way down, and WATCHDOG=1 at half the
interval systemd asks for (C{WatchdogSec=}, given as C{$WATCHDOG_USEC}) while
the reactor runs.  Without C{$NOTIFY_SOCKET} (not under systemd, or not
C{Type=notify}) nothing is sent.
"""

from __future__ import annotations

import os
import socket

from twisted.internet import task
from twisted.logger import Logger

log = Logger(namespace="kubernetai.systemd")


def notify(state: str, environ=os.environ) -> bool:
    """Send C{state} to systemd's notification socket; whether there was one.

    Never waits: a notification the socket has no room for (nobody reads it) is dropped, and one
    that cannot be sent is logged, so that the reactor, and the watchdog's pings, go on.
    """
    path = environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notification:
            notification.setblocking(False)
            notification.connect(path)
            notification.send(state.encode())
    except BlockingIOError:
        log.warn("systemd's notification socket is full: {state} not sent", state=state)
    except OSError as err:
        log.warn("cannot notify systemd ({path}): {error}", path=environ.get("NOTIFY_SOCKET"), error=err)
    return True


def watchdog_interval(environ=os.environ) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of systemd's C{WatchdogSec}, or None when not asked for."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def start_watchdog(reactor, environ=os.environ) -> task.LoopingCall | None:
    """Send WATCHDOG=1 every L{watchdog_interval} from now on, if systemd asks for it; the LoopingCall to stop."""
    interval = watchdog_interval(environ)
    if interval is None:
        return None
    pinging = task.LoopingCall(notify, "WATCHDOG=1")
    pinging.clock = reactor
    pinging.start(interval)
    return pinging
