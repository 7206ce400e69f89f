# -*- test-case-name: tests.test_daemon,tests.test_workers -*-
"""
The twistd command line: C{twistd kubernetai -c Corefile [--validate] [--dns.port N] [--workers N|auto]}.
"""

from __future__ import annotations

import platform
import sys

import twisted
from twisted.python import usage

import kubernetai

from kubernetai.corefile import CorefileError
from kubernetai.daemon import build_daemon
from kubernetai.supervisor import Supervisor, check_shareable, describe, worker_count


class Options(usage.Options):
    synopsis = "[-c Corefile] [--validate] [--dns.port PORT] [--workers N|auto]"
    longdesc = "A DNS server answering Kubernetes service discovery for several clusters at once."
    optParameters = [
        ["conf", "c", "Corefile", "The Corefile to load."],
        ["dns.port", None, 53, "The port of server blocks whose keys name none.", int],
        ["workers", None, 1, "Serve every DNS port from N processes (SO_REUSEPORT), each watching on its own; "
                             "auto: one per usable CPU.", worker_count],
    ]
    optFlags = [
        ["validate", None, "Parse the Corefile, build the chain, print the plan and exit (0 good, 1 bad)."],
    ]

    def opt_version(self):
        """Print kubernetai's version, and Twisted's and Python's, and exit."""
        print(version_line())
        sys.exit(0)


def version_line() -> str:
    """C{kubernetai 0.2.0 (Twisted 26.10.0, Python 3.11.7)}."""
    return f"kubernetai {kubernetai.__version__} (Twisted {twisted.__version__}, Python {platform.python_version()})"


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
    if workers > 1:
        return Supervisor(daemon, workers, config["conf"], config["dns.port"])
    return daemon.service(default_port=config["dns.port"], handle_signals=True)
