# -*- test-case-name: tests.test_demo -*-
"""
C{kubernetai-demo}: kubernetai answering two clusters' names on a machine without a cluster.

Two of kubernetai's own API servers (L{kubernetai.apiserver}) serve the clusters "east" and
"west" from the YAML manifests beside this module (or the user's, with C{--east}/C{--west});
a daemon with two C{kubernetai cluster.local} stanzas, east first with C{fallthrough}, answers
on 127.0.0.1; the C{dig} lines to try are printed once it listens.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass

from twisted.internet import defer
from twisted.logger import FilteringLogObserver, PredicateResult

from kubernetai.apiserver.manifests import ManifestError, load_manifests
from kubernetai.apiserver.server import ApiServer
from kubernetai.corefile import CorefileError
from kubernetai.daemon import build_daemon
from kubernetai.logs import CoreDNSLogObserver

MANIFESTS = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PORT = 1053

COREFILE = """\
# kubernetai-demo: two clusters answer for cluster.local; east first, west for what east lacks.
cluster.local:{port} in-addr.arpa:{port} {{
    bind 127.0.0.1
    errors
    log
    kubernetai cluster.local in-addr.arpa {{
        name east
        endpoint {east}
        fallthrough
    }}
    kubernetai cluster.local in-addr.arpa {{
        name west
        endpoint {west}
    }}
}}
"""


@dataclass(frozen=True)
class Try:
    """A question to ask the demo, as dig's arguments, and what its answer shows."""

    dig: str
    shows: str


TRIES = (
    Try("web.shop.svc.cluster.local", "east's web: both clusters have it, east answers first"),
    Try("ledger.payments.svc.cluster.local", "only west has it: east falls through to west"),
    Try("db.shop.svc.cluster.local", "a headless service: one A record per ready pod"),
    Try("db-0.db.shop.svc.cluster.local", "one pod of the headless service, by its hostname"),
    Try("SRV _https._tcp.web.shop.svc.cluster.local", "the port of a named port, and its target"),
    Try("-x 10.100.40.40", "the PTR record of west's ledger"),
    Try("search.shop.svc.cluster.local", "an ExternalName service: a CNAME"),
    Try("nothing.shop.svc.cluster.local", "NXDOMAIN: neither cluster has it"),
)


def demo_corefile(port: int, east_url: str, west_url: str) -> str:
    """The demo's Corefile: both stanzas for cluster.local and the reverse zones, on C{port}."""
    return COREFILE.format(port=port, east=east_url, west=west_url)


def instructions(port: int, urls: dict[str, str]) -> str:
    """What the demo prints once it listens: where things are, and the dig lines to try."""
    clusters = ", ".join(f"{name} at {url}" for name, url in urls.items())
    width = max(len(f"dig @127.0.0.1 -p {port} {entry.dig}") for entry in TRIES)
    lines = [f"kubernetai-demo: two clusters ({clusters}) answered by kubernetai on 127.0.0.1:{port}.", "Try:"]
    lines += [f"  {f'dig @127.0.0.1 -p {port} {entry.dig}':<{width}}  # {entry.shows}" for entry in TRIES]
    lines.append("Ctrl-C stops the demo.")
    return "\n".join(lines)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kubernetai-demo", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="DNS port on 127.0.0.1 (default 1053)")
    for name in ("east", "west"):
        parser.add_argument(f"--{name}", default=os.path.join(MANIFESTS, f"{name}.yaml"), metavar="YAML",
                            help=f"the {name} cluster's objects (default: the shipped {name}.yaml)")
    return parser.parse_args(argv)


@defer.inlineCallbacks
def run(reactor, arguments: argparse.Namespace, out=sys.stdout):
    """Start both API servers and the daemon; fire once it listens, after printing the dig lines."""
    manifests = {"east": load_manifests(arguments.east), "west": load_manifests(arguments.west)}
    urls = {}
    for name, objects in manifests.items():
        api = ApiServer(reactor=reactor)
        urls[name] = api.start()
        reactor.addSystemEventTrigger("before", "shutdown", api.stop)
        for obj in objects:
            api.put(obj["kind"], obj)
    directory = tempfile.mkdtemp(prefix="kubernetai-demo-")
    reactor.addSystemEventTrigger("after", "shutdown", shutil.rmtree, directory, True)
    path = os.path.join(directory, "Corefile")
    with open(path, "w") as corefile:
        corefile.write(demo_corefile(arguments.port, urls["east"], urls["west"]))
    daemon = build_daemon(path).service(reactor)
    daemon.startService()
    reactor.addSystemEventTrigger("before", "shutdown", daemon.stopService)
    yield daemon.dns.listening
    out.write(instructions(arguments.port, urls) + "\n")
    out.flush()


def daemon_events_only(event: dict) -> PredicateResult:
    """Show what the daemon logs, not the demo clusters' request lines nor Twisted's own."""
    namespace = event.get("log_namespace") or ""
    if namespace.startswith("kubernetai.") and not namespace.startswith("kubernetai.apiserver"):
        return PredicateResult.maybe
    return PredicateResult.no


def main(argv: list[str] | None = None) -> int:
    """The C{kubernetai-demo} command."""
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner

    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    shown = FilteringLogObserver(CoreDNSLogObserver(sys.stdout), [daemon_events_only])
    globalLogBeginner.beginLoggingTo([shown], redirectStandardIO=False)
    status = []

    def failed(failure):
        reason = failure.value
        known = (ManifestError, CorefileError, OSError)
        sys.stderr.write(f"kubernetai-demo: {reason if isinstance(reason, known) else failure.getTraceback()}\n")
        status.append(1)
        reactor.stop()

    reactor.callWhenRunning(lambda: run(reactor, arguments).addErrback(failed))
    reactor.run()
    return status[0] if status else 0
