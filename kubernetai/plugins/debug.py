# -*- test-case-name: tests.test_small_plugins -*-
"""
debug: has the daemon write its debug log events, as CoreDNS's debug plugin
turns on C{log.Debug}: with C{--logger=kubernetai.logs.observer} they are
the C{[DEBUG] plugin/NAME: ...} lines (local's, for one, names every
localhost query it answers).  Process-wide, as in CoreDNS: on while any
server block that has it runs.  C{debug} takes no arguments.

Where it differs: CoreDNS's debug also stops recovering from a plugin's
panic, so that one crashes the server with its stack trace; kubernetai
always answers such a query with SERVFAIL and logs the traceback.
"""

from __future__ import annotations

from twisted.application import service

from kubernetai import logs, options
from kubernetai.chain import ServerConfig
from kubernetai.corefile import Directive


class DebugLogging(service.Service):
    """Debug events are written while this runs."""

    def startService(self) -> None:
        super().startService()
        logs.debug_block_started()

    def stopService(self):
        logs.debug_block_stopped()
        return super().stopService()


def setup(directives: list[Directive], config: ServerConfig) -> None:
    """C{debug}: no arguments, no block."""
    directive = options.only_once(directives)
    options.arg_count(directive, 0, 0)
    options.no_block(directive)
    config.services.append(DebugLogging())
    config.plan.append("debug")
    return None
