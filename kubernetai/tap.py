# -*- test-case-name: tests.test_daemon,tests.test_workers -*-
"""
The twistd command line: C{twistd kubernetai -c Corefile [--validate] [--dns.port N] [--workers N|auto]
[--explain NAME [TYPE]]}.

C{--explain} is a one-shot: it starts the Corefile's stanzas and plugin services (no DNS or HTTP
listener, no loop probe), waits for the stanzas to sync as the daemon would before listening, prints
why NAME gets its answer (L{kubernetai.explain}) and exits: 0, or 1 for a bad question.
"""

from __future__ import annotations

import platform
import sys

import twisted
from twisted.internet import defer, task
from twisted.python import usage

import kubernetai

from kubernetai.corefile import CorefileError
from kubernetai.daemon import build_daemon
from kubernetai.explain import as_text, explain, name_problem, type_code
from kubernetai.httpservice import HTTPService
from kubernetai.plugins.loop import LoopProbe
from kubernetai.supervisor import Supervisor, check_shareable, describe, worker_count


class Options(usage.Options):
    synopsis = "[-c Corefile] [--validate] [--dns.port PORT] [--workers N|auto] [--explain NAME [TYPE]]"
    longdesc = "A DNS server answering Kubernetes service discovery for several clusters at once."
    optParameters = [
        ["conf", "c", "Corefile", "The Corefile to load."],
        ["dns.port", None, 53, "The port of server blocks whose keys name none.", int],
        ["workers", None, 1, "Serve every DNS port from N processes (SO_REUSEPORT), each watching on its own; "
                             "auto: one per usable CPU.", worker_count],
        ["explain", None, None, "Start the stanzas, wait for their sync, print why NAME [TYPE] (default A) gets "
                                "its answer, and exit."],
    ]
    optFlags = [
        ["validate", None, "Parse the Corefile, build the chain, print the plan and exit (0 good, 1 bad)."],
    ]

    def parseArgs(self, *rest):
        """TYPE after C{--explain NAME}; nothing else."""
        if rest and (self["explain"] is None or len(rest) > 1):
            raise usage.UsageError(f"unexpected arguments: {' '.join(rest)}")
        if self["explain"] is not None and name_problem(self["explain"]) is not None:
            raise usage.UsageError(f"--explain: {name_problem(self['explain'])}")
        qtype = rest[0] if rest else "A"
        self["explain_type"] = type_code(qtype)
        if self["explain_type"] is None:
            raise usage.UsageError(f"--explain: {qtype!r} is no DNS type (A, AAAA, SRV, PTR, TYPE65...)")

    def opt_version(self):
        """Print kubernetai's version, and Twisted's and Python's, and exit."""
        print(version_line())
        sys.exit(0)


def version_line() -> str:
    """C{kubernetai 0.2.0 (Twisted 26.10.0, Python 3.11.7)}."""
    return f"kubernetai {kubernetai.__version__} (Twisted {twisted.__version__}, Python {platform.python_version()})"


async def explain_once(daemon, name: str, qtype: int, reactor) -> None:
    """Start what answers queries, wait for the stanzas' sync, print the explanation of C{name}, stop."""
    started = [svc for svc in daemon.plugin_services() if not isinstance(svc, (HTTPService, LoopProbe))]
    for plugin_service in started:
        plugin_service.startService()
    try:
        await defer.gatherResults([wait() for wait in daemon.startup_waits()])
        document = await explain(daemon.tables, name, qtype)
        sys.stdout.write(as_text(document))
    finally:
        await defer.gatherResults([defer.maybeDeferred(svc.stopService) for svc in reversed(started)])


def makeService(config: Options):
    """Build the daemon from the Corefile, or print the error and exit 1."""
    workers = config["workers"]
    try:
        daemon = build_daemon(config["conf"], default_port=config["dns.port"])
        if workers > 1:
            check_shareable(daemon)
    except CorefileError as err:
        sys.stderr.write(f"{err}\n")
        raise SystemExit(1)
    except OSError as err:
        sys.stderr.write(f"{config['conf']}: {err.strerror or err}\n")
        raise SystemExit(1)
    if config["validate"]:
        plan = daemon.plan() + (f"\n{describe(workers)}" if workers > 1 else "")
        sys.stdout.write(plan + "\nCorefile OK\n")
        raise SystemExit(0)
    if config["explain"] is not None:
        task.react(lambda reactor: explain_once(daemon, config["explain"], config["explain_type"], reactor))
    if workers > 1:
        return Supervisor(daemon, workers, config["conf"], config["dns.port"])
    return daemon.service(default_port=config["dns.port"], handle_signals=True)
