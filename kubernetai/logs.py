# -*- test-case-name: tests.test_plugins -*-
"""
Log lines as CoreDNS writes them, for operators whose log pipelines parse
CoreDNS's output: C{[INFO] plugin/reload: ...}, C{[ERROR] plugin/errors: ...},
and the log plugin's query lines with no prefix.  Use it with
C{twistd --logger kubernetai.logs.observer kubernetai ...}.
"""

from __future__ import annotations

import sys

from twisted.logger import ILogObserver, LogLevel, formatEvent
from zope.interface import implementer

LEVEL_NAMES = {
    LogLevel.debug: "DEBUG",
    LogLevel.info: "INFO",
    LogLevel.warn: "WARNING",
    LogLevel.error: "ERROR",
    LogLevel.critical: "FATAL",
}
PLUGIN_NAMESPACE = "kubernetai.plugins."
# How many running server blocks have the debug plugin: while any does, debug events are written.
_debug_blocks = 0


def debugging() -> bool:
    """Whether some server block has C{debug}: plugins write their debug events only then."""
    return _debug_blocks > 0


def debug_block_started() -> None:
    global _debug_blocks
    _debug_blocks += 1


def debug_block_stopped() -> None:
    global _debug_blocks
    _debug_blocks -= 1


def coredns_line(event: dict) -> str | None:
    """One event as CoreDNS would print it, or None for events CoreDNS would not print (debug, unless
    a server block has the debug plugin)."""
    level = event.get("log_level", LogLevel.info)
    if level == LogLevel.debug and not debugging():
        return None
    namespace = event.get("log_namespace") or ""
    # A plugin that is a package (kubernetai.plugins.rewrite.response) logs as the plugin (plugin/rewrite).
    plugin = namespace[len(PLUGIN_NAMESPACE) :].split(".")[0] if namespace.startswith(PLUGIN_NAMESPACE) else ""
    prefix = f"plugin/{plugin}: " if plugin and plugin != "log" else ""
    text = formatEvent(event)
    failure = event.get("log_failure")
    if failure is not None:
        text += "\n" + failure.getTraceback()
    return f"[{LEVEL_NAMES.get(level, 'INFO')}] {prefix}{text}"


@implementer(ILogObserver)
class CoreDNSLogObserver:
    """Writes CoreDNS-style lines to a stream, one per event."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def __call__(self, event: dict) -> None:
        line = coredns_line(event)
        if line is not None:
            self.stream.write(line + "\n")
            self.stream.flush()


def observer() -> CoreDNSLogObserver:
    """The observer factory twistd's C{--logger} takes: CoreDNS-style lines on standard output."""
    return CoreDNSLogObserver(sys.stdout)
