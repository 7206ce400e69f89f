# -*- test-case-name: tests.test_daemon -*-
"""
Telling systemd how the daemon is doing (sd_notify): READY=1 once every
listener is bound (so once every stanza has synced or waited its
startup_timeout), STOPPING=1 on the way down.  Without C{$NOTIFY_SOCKET}
(not under systemd, or not C{Type=notify}) nothing is sent.
"""

from __future__ import annotations

import os
import socket


def notify(state: str, environ=os.environ) -> bool:
    """Send C{state} to systemd's notification socket; whether there was one."""
    path = environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notification:
        notification.connect(path)
        notification.sendall(state.encode())
    return True
