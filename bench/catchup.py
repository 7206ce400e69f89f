"""
Benchmark of a stanza's catch-up after an outage of its API server: how long
after the server is back a running daemon answers what changed while it was
down, and how many connections the stanza tried meanwhile.

    python bench/catchup.py [--rounds N] [--down SECONDS] [--no-probe]

One process: the fake API server of L{kubernetai.apiserver.server} and a daemon
with one stanza (Services, EndpointSlices and Namespaces watched) share the
reactor; the daemon is asked over UDP from a thread.  Each round the server
goes down (its port closes every connection at once, so that each attempt is
counted), a new namespace with a service and a new endpoint of a headless
service are made, and the server comes back.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.internet.threads import deferToThread

from dataplane import ZONE, ask, free_port, percentile, print_header, service_fqdn
from kubernetai.apiserver.server import ApiServer
from kubernetai.daemon import build_daemon

POLL_INTERVAL = 0.01


def sleep(seconds: float) -> defer.Deferred:
    return task.deferLater(reactor, seconds, lambda: None)


@defer.inlineCallbacks
def wait_until(predicate, timeout: float = 60.0):
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise RuntimeError("timed out")
        yield sleep(POLL_INTERVAL)


@defer.inlineCallbacks
def answered(port: int, name: str, ip: str):
    """The reactor time at which 127.0.0.1:C{port} first answers C{name} with C{ip}."""
    while ip not in (yield deferToThread(ask, port, name, 0.5))[1]:
        yield sleep(POLL_INTERVAL)
    return reactor.seconds()


def changes_while_down(api: ApiServer, round_number: int) -> dict[str, str]:
    """One change for each watch: a new namespace with a service in it, a new endpoint of
    default/db; the name and address each must answer."""
    namespace = f"round-{round_number}"
    api.namespace(namespace)
    api.service(namespace, "web", cluster_ips=[f"10.0.{round_number}.1"])
    endpoint = f"10.1.{round_number}.1"
    api.endpoint_slice("default", f"db-{round_number}", "db", endpoints=[{"addresses": [endpoint]}])
    return {service_fqdn(namespace, "web"): f"10.0.{round_number}.1", service_fqdn("default", "db"): endpoint}


@defer.inlineCallbacks
def run(options):
    print_header()
    api = ApiServer()
    api.start()
    api.namespace("default")
    api.service("default", "db", headless=True)
    port = free_port()
    directory = tempfile.mkdtemp(prefix="kubernetai-catchup-")
    corefile = Path(directory) / "Corefile"
    corefile.write_text(f".:{port} {{\n    bind 127.0.0.1\n    kubernetai {ZONE} {{\n        endpoint {api.url}\n"
                        f"    }}\n}}\n")
    daemon = build_daemon(str(corefile))
    (stanza,) = daemon.shared.stanzas
    if not options.probe:
        stanza.cluster.link.probe = None
    root = daemon.service(reactor)
    root.startService()
    yield root.getServiceNamed("dns").listening
    watches = len(stanza.cluster.watchers)
    print(f"stanza    {stanza.describe()}: {watches} watches; probe of /readyz "
          f"{'every %.1f s while no watch is up' % stanza.cluster.link.probe_interval if options.probe else 'off'}")
    print(f"rounds    {options.rounds}, each down {options.down:.0f} s and a fraction")
    catch_ups = []
    for round_number in range(1, options.rounds + 1):
        yield wait_until(lambda: api.open_watches == watches)
        yield sleep(options.settle)
        # The outages end at every phase of the probe's second (not all just after a probe).
        down = options.down + (round_number - 1) / options.rounds
        cut_before = len(api.cut_at)
        yield api.go_down(keep_port=True)
        yield sleep(down / 2)
        wanted = changes_while_down(api, round_number)
        yield sleep(down / 2)
        attempts = len(api.cut_at) - cut_before
        api.come_back()
        back_at = reactor.seconds()
        times = yield defer.gatherResults([answered(port, name, ip) for name, ip in wanted.items()])
        catch_ups.append(max(times) - back_at)
        print(f"round {round_number}   down {down:.1f} s, {attempts} connections tried meanwhile; "
              f"caught up {catch_ups[-1]:.2f} s after it came back")
    print(f"catch-up  min {min(catch_ups):.2f} s, median {percentile(catch_ups, 0.5):.2f} s, "
          f"max {max(catch_ups):.2f} s")
    yield root.stopService()
    yield api.stop()


def parse_options(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--down", type=float, default=10.0,
                        help="seconds the API server is down in the first round (round N: (N - 1) / rounds more)")
    parser.add_argument("--settle", type=float, default=11.0,
                        help="seconds every watch stays up before each outage "
                             "(over the backoff's cap: it starts afresh)")
    parser.add_argument("--no-probe", dest="probe", action="store_false", help="no probe of /readyz")
    return parser.parse_args(argv)


def main() -> None:
    options = parse_options()
    task.react(lambda _: run(options))


if __name__ == "__main__":
    sys.exit(main())
