# -*- test-case-name: tests.test_daemon -*-
"""
The twistd command line: C{twistd kubernetai -c Corefile [--validate] [--dns.port N]}.
"""

from __future__ import annotations

import sys

from twisted.python import usage

from kubernetai.corefile import CorefileError
from kubernetai.daemon import build_daemon


class Options(usage.Options):
    synopsis = "[-c Corefile] [--validate] [--dns.port PORT]"
    longdesc = "A DNS server answering Kubernetes service discovery for several clusters at once."
    optParameters = [
        ["conf", "c", "Corefile", "The Corefile to load."],
        ["dns.port", None, 53, "The port of server blocks whose keys name none.", int],
    ]
    optFlags = [
        ["validate", None, "Parse the Corefile, build the chain, print the plan and exit (0 good, 1 bad)."],
    ]


def makeService(config: Options):
    """Build the daemon from the Corefile, or print the error and exit 1."""
    try:
        daemon = build_daemon(config["conf"], default_port=config["dns.port"])
    except CorefileError as err:
        sys.stderr.write(f"{err}\n")
        raise SystemExit(1)
    except OSError as err:
        sys.stderr.write(f"{config['conf']}: {err.strerror or err}\n")
        raise SystemExit(1)
    if config["validate"]:
        sys.stdout.write(daemon.plan() + "\nCorefile OK\n")
        raise SystemExit(0)
    return daemon.service(default_port=config["dns.port"], handle_signals=True)
