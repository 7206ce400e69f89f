"""
Benchmark of one stanza's data plane: how long a L{Cluster} takes to sync a
large cluster, how much memory its index holds, how soon a change made on the
API server is visible in its snapshot, and how soon a running daemon answers it.

    python bench/dataplane.py [--services N] [--headless N] [--endpoints-per-slice N] [--changes N]

The fake API server of L{kubernetai.apiserver.server} runs in a child process (C{--serve}),
so this process's memory is the client side only; they talk over 127.0.0.1.
Memory is split between services and endpoints by a second measuring child
(C{--services-only URL}) whose stanza says C{noendpoints}.  See bench/README.md
for what each figure means.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import math
import os
import platform
import queue
import socket
import struct
import subprocess
import tempfile
import sys
import time
import uuid
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from twisted.internet import reactor, stdio
from twisted.names import dns
from twisted.protocols.basic import LineReceiver

from kubernetai.corefile import parse_corefile
from kubernetai.kubernetes.cluster import Cluster
from kubernetai.kubernetes.config import parse_stanza
from kubernetai.kubernetes.connection import api_client
from kubernetai.kubernetes.index import Slices
from kubernetai.kubernetes.shardedmap import ShardedMap

NAMESPACES = 100
NODES = 500
ZONES = 3
CLUSTER_IP_BASE = "10.96.0.1"
ENDPOINT_IP_BASE = "10.128.0.1"
CHANGED_IP_BASE = "10.112.0.1"
SERVICE_PORTS = [{"name": "http", "port": 80}]
SLICE_PORTS = [{"name": "http", "port": 8080}]
SYNC_TIMEOUT = 300.0
CHANGE_TIMEOUT = 30.0
LIBRARIES = ("kubernetai", "twisted", "kubernetes", "urllib3")
ZONE = "cluster.local"
QUERY_ID = struct.Struct("!H")
TWISTD = str(Path(sys.executable).with_name("twistd"))
DAEMON_START_TIMEOUT = 120.0
REPO = Path(__file__).resolve().parent.parent


# The population the API server process holds


def address(base: str, offset: int) -> str:
    """The IPv4 address C{offset} past C{base}."""
    return str(ipaddress.IPv4Address(base) + offset)


def namespace_of(number: int) -> str:
    """The namespace of the C{number}th service of either kind: they are spread over L{NAMESPACES}."""
    return f"ns-{number % NAMESPACES:03d}"


def cluster_ip_service(number: int) -> tuple[str, str, str]:
    """(namespace, name, cluster IP) of the C{number}th ClusterIP service."""
    return namespace_of(number), f"svc-{number:05d}", address(CLUSTER_IP_BASE, number)


def headless_endpoints(number: int, per_slice: int) -> list[dict]:
    """The endpoints of the C{number}th headless service's one slice: one ready Pod each."""
    namespace, service = namespace_of(number), f"headless-{number:04d}"
    endpoints = []
    for index in range(per_slice):
        serial = number * per_slice + index
        pod = f"{service}-{index}"
        endpoints.append({
            "addresses": [address(ENDPOINT_IP_BASE, serial)],
            "hostname": pod,
            "nodeName": f"node-{serial % NODES:03d}",
            "zone": f"zone-{serial % ZONES}",
            "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod, "uid": str(uuid.UUID(int=serial))},
        })
    return endpoints


# The API server process


def serve(options) -> None:
    """Load the population into a fake API server, then obey L{Control} on stdin and stdout."""
    # Imported here, from the checkout, so that the measuring process never loads the server's code.
    sys.path.insert(0, str(REPO))
    from kubernetai.apiserver.server import ApiServer

    api = ApiServer(history_size=options.changes + 1000)
    url = api.start()
    started = time.monotonic()
    load(api, options)
    stdio.StandardIO(Control(api, f"{url} {time.monotonic() - started:.3f}", options.services))
    reactor.run()


class Control(LineReceiver):
    """The API server process's side of the pipe: it says C{ready URL LOAD-SECONDS}, then
    answers each C{change N} with C{changed NAMESPACE NAME IP MONOTONIC-TIME}, each
    C{counts} with C{counts JSON} (L{requests_and_connections}) and each C{relist} (every
    watch cut and its history forgotten: each client lists everything again) with
    C{relisted}; the end of its input stops it."""

    delimiter = b"\n"

    def __init__(self, api, ready: str, services: int) -> None:
        self.api = api
        self.ready = ready
        self.services = services

    def connectionMade(self):
        self.sendLine(f"ready {self.ready}".encode())

    def lineReceived(self, line):
        command, *number = line.decode().split()
        if command == "counts":
            self.sendLine(f"counts {json.dumps(requests_and_connections(self.api), separators=(',', ':'))}".encode())
            return
        if command == "relist":
            self.api.drop_watches()
            self.api.expire_history()
            self.sendLine(b"relisted")
            return
        assert command == "change", command
        self.sendLine(change_service(self.api, int(number[0]), self.services).encode())

    def connectionLost(self, reason):
        reactor.stop()


def requests_and_connections(api) -> dict:
    """The requests the API server has answered, C{"VERB:RESOURCE": count}, and C{"connections"} it accepted."""
    return {**{f"{verb}:{resource}": count for (verb, resource), count in api.counts.items()},
            "connections": api.connections_accepted}


def load(api, options) -> None:
    """Put the namespaces, the ClusterIP services, then each headless service and its one EndpointSlice."""
    for number in range(NAMESPACES):
        api.namespace(namespace_of(number))
    for number in range(options.services):
        namespace, name, ip = cluster_ip_service(number)
        api.service(namespace, name, cluster_ips=[ip], ports=SERVICE_PORTS)
    for number in range(options.headless):
        namespace, name = namespace_of(number), f"headless-{number:04d}"
        api.service(namespace, name, headless=True, ports=SERVICE_PORTS)
        api.endpoint_slice(namespace, f"{name}-x7k2p", name, ports=SLICE_PORTS,
                           endpoints=headless_endpoints(number, options.endpoints_per_slice))


def change_service(api, number: int, services: int) -> str:
    """Give a ClusterIP service a cluster IP no service had; the line that reports it."""
    namespace, name, _ = cluster_ip_service(number % services)
    ip = address(CHANGED_IP_BASE, number)
    made_at = time.monotonic()
    api.service(namespace, name, cluster_ips=[ip], ports=SERVICE_PORTS)
    return f"changed {namespace} {name} {ip} {made_at!r}"


class ApiServerProcess:
    """The C{--serve} child, driven over its stdin and stdout."""

    def __init__(self, options) -> None:
        command = [
            sys.executable, __file__, "--serve", "--services", str(options.services),
            "--headless", str(options.headless), "--endpoints-per-slice", str(options.endpoints_per_slice),
            "--changes", str(options.changes),
        ]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        url, load_seconds = self._answer("ready")
        self.url, self.load_seconds = url, float(load_seconds)

    def change(self, number: int) -> tuple[tuple[str, str], str, float]:
        """Have the server change a service; its key, new IP and the monotonic time of the change."""
        self.process.stdin.write(f"change {number}\n")
        namespace, name, ip, made_at = self._answer("changed")
        return (namespace, name), ip, float(made_at)

    def counts(self) -> dict:
        """The server's L{requests_and_connections} so far."""
        self.process.stdin.write("counts\n")
        return json.loads(self._answer("counts")[0])

    def relist(self) -> None:
        """Have the server cut every watch and forget its history, so that its clients list again."""
        self.process.stdin.write("relist\n")
        self._answer("relisted")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)

    def _answer(self, expected: str) -> list[str]:
        words = self.process.stdout.readline().split()
        if words[:1] != [expected]:
            raise RuntimeError(f"API server process said {' '.join(words)!r}, expected {expected!r}")
        return words[1:]


# DNS on the wire


def query_tail(name: str) -> bytes:
    """A query (RD set, as dnsperf sends) for C{name} A, less its two-byte ID."""
    message = dns.Message(recDes=1)
    message.addQuery(name.rstrip(".").encode("ascii"), dns.A, dns.IN)
    return message.toStr()[2:]


def ask(port: int, name: str, timeout: float = 1.0) -> tuple[int, list[str]]:
    """The rcode and sorted A addresses 127.0.0.1:C{port} answers for C{name}."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        sock.send(QUERY_ID.pack(1) + query_tail(name))
        reply = dns.Message()
        reply.fromStr(sock.recv(4096))
    return reply.rCode, sorted(record.payload.dottedQuad() for record in reply.answers if record.type == dns.A)


def free_port() -> int:
    """A port of 127.0.0.1 that is free for both UDP and TCP (the servers listen on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def service_fqdn(namespace: str, name: str) -> str:
    """A service's name in ZONE, absolute."""
    return f"{name}.{namespace}.svc.{ZONE}."



# The measuring process


class ObservedCluster(Cluster):
    """A Cluster that, while C{published} is a queue, puts each snapshot it publishes there
    with the monotonic time it became visible to readers."""

    published: queue.Queue | None = None

    @property
    def snapshot(self):
        return self._snapshot

    @snapshot.setter
    def snapshot(self, snapshot):
        self._snapshot = snapshot
        if self.published is not None:
            self.published.put((time.monotonic(), snapshot))


def status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def resident_kib() -> int:
    """VmRSS once the garbage collector has run, so that it holds no cycles about to be freed."""
    gc.collect()
    return status_kib("VmRSS")


def reachable_bytes(roots) -> int:
    """sys.getsizeof summed over every distinct object reachable from C{roots} through
    dicts, lists, tuples (named ones too), sets and the index's sharded maps."""
    seen: set[int] = set()
    stack = list(roots)
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, ShardedMap):
            stack.append(obj.shards)
        elif isinstance(obj, Slices):
            stack.append(vars(obj))
    return total


def stanza_for(url: str, with_endpoints: bool):
    """The stanza of a Corefile that points one C{kubernetai cluster.local} at C{url}."""
    body = f"        endpoint {url}\n" + ("" if with_endpoints else "        noendpoints\n")
    text = f".:53 {{\n    kubernetai cluster.local {{\n{body}    }}\n}}\n"
    return parse_stanza(parse_corefile(text, "Corefile")[0].directives[0], ["cluster.local."])


def measure_sync(url: str, with_endpoints: bool) -> tuple[ObservedCluster, dict]:
    """Start a stanza against C{url} and wait until it has synced; the cluster and its figures."""
    stanza = stanza_for(url, with_endpoints)
    # The reactor only receives the callFromThread that fires when_synced waiters; this
    # process never runs it, and reads the index thread's own synced_at instead.
    cluster = ObservedCluster(stanza, *api_client(stanza), reactor)
    rss_before = resident_kib()
    started = time.time()
    cluster.start()
    while not cluster.synced:
        if time.time() - started > SYNC_TIMEOUT:
            raise RuntimeError(f"not synced after {SYNC_TIMEOUT:.0f} s: {cluster.status()}")
        time.sleep(0.01)
    figures = {
        "sync_seconds": cluster.synced_at - started,
        "rss_before_kib": rss_before,
        "rss_after_kib": resident_kib(),
        "peak_kib": status_kib("VmHWM"),
        "live_bytes": reachable_bytes([vars(cluster.store), vars(cluster.snapshot)]),
        "counts": cluster.snapshot.counts(),
    }
    return cluster, figures


def measure_services_only(url: str) -> dict:
    """The sync figures of a C{noendpoints} stanza, measured in a fresh child process."""
    command = [sys.executable, __file__, "--services-only", url]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def measure_delays(cluster: ObservedCluster, server: ApiServerProcess, changes: int) -> list[float]:
    """Seconds from each change on the server to the first snapshot showing it, one change
    at a time: the next is made once the last is seen."""
    cluster.published = queue.Queue()
    delays = []
    for number in range(changes):
        key, ip, made_at = server.change(number)
        delays.append(first_seen(cluster.published, key, ip) - made_at)
    cluster.published = None
    return delays


def measure_answer_delays(server: ApiServerProcess, first_change: int, changes: int) -> tuple[list[float], int]:
    """Seconds from each change on the server to the first answer of a running C{twistd kubernetai} (one
    stanza, no cache) showing it, asked over UDP again and again; and the daemon's VmRSS in KiB after."""
    with tempfile.TemporaryDirectory(prefix="kubernetai-dataplane-") as directory:
        port = free_port()
        corefile = Path(directory) / "Corefile"
        corefile.write_text(f".:{port} {{\n    bind 127.0.0.1\n    kubernetai {ZONE} {{\n"
                            f"        endpoint {server.url}\n    }}\n}}\n")
        with open(Path(directory) / "daemon.log", "w") as log:
            daemon = subprocess.Popen([TWISTD, "-n", "--pidfile=", "kubernetai", "-c", str(corefile)], cwd=directory,
                                      stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            namespace, name, ip = cluster_ip_service(first_change)
            first_answered(port, service_fqdn(namespace, name), ip, DAEMON_START_TIMEOUT)
            delays = []
            for number in range(first_change, first_change + changes):
                (namespace, name), ip, made_at = server.change(number)
                delays.append(first_answered(port, service_fqdn(namespace, name), ip, CHANGE_TIMEOUT) - made_at)
            with open(f"/proc/{daemon.pid}/status") as status:
                rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            return delays, rss_kib
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)


def first_answered(port: int, name: str, ip: str, timeout: float) -> float:
    """The monotonic time of the first answer from 127.0.0.1:C{port} that gives C{name} the address C{ip}."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ip in ask(port, name, timeout=0.5)[1]:
                return time.monotonic()
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not answer {ip} within {timeout:.0f} s")


def first_seen(published: queue.Queue, key: tuple[str, str], ip: str) -> float:
    """When the first snapshot in which service C{key} has cluster IP C{ip} was published."""
    while True:
        published_at, snapshot = published.get(timeout=CHANGE_TIMEOUT)
        service = snapshot.services.get(key)
        if service is not None and ip in service.cluster_ips:
            return published_at


# Report


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value at least C{fraction} of them are not above."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def git_revision() -> str:
    """The checkout's commit, and whether kubernetai/ differs from it."""
    def git(*arguments):
        return subprocess.run(["git", "-C", str(REPO), *arguments], capture_output=True, text=True).stdout.strip()

    revision = git("rev-parse", "--short", "HEAD") or "unknown"
    return revision + (" + uncommitted changes" if git("status", "--porcelain", "--", "kubernetai") else "")


def print_header() -> None:
    """When, where and with what the figures below were measured."""
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in LIBRARIES)
    print(f"date      {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    print(f"machine   {len(os.sched_getaffinity(0))} CPUs, {cpu_model()}, Linux {platform.release()}")
    print(f"python    {platform.python_version()} ({sys.executable})")
    print(f"versions  {versions}; kubernetai at git {git_revision()}")


def print_population(options, server: ApiServerProcess) -> None:
    """What the API server process holds."""
    endpoints = options.headless * options.endpoints_per_slice
    print(f"loaded    {options.services + options.headless:,} services ({options.services:,} ClusterIP with one port, "
          f"{options.headless:,} headless) in {NAMESPACES} namespaces; {options.headless:,} EndpointSlices of "
          f"{options.endpoints_per_slice} = {endpoints:,} ready endpoints (hostname, node, zone, Pod targetRef)")
    print(f"          into the API server process at {server.url} in {server.load_seconds:.1f} s")


def kib_per(kib_total: float, count: int) -> str:
    """C{kib_total} KiB shared among C{count} objects, in bytes each."""
    return f"{kib_total * 1024 / count:,.0f} B" if count else "n/a"


def print_sync(services_only: dict, full: dict) -> None:
    """Seconds from cluster.start() to synced, for both stanzas."""
    print("\nsync: cluster.start() to synced (all watches listed, snapshot published)")
    print(f"  services only (noendpoints)    {services_only['sync_seconds']:8.2f} s")
    print(f"  services and endpoint slices   {full['sync_seconds']:8.2f} s")


def print_memory(services_only: dict, full: dict) -> None:
    """Memory of both stanzas, and the split between services and endpoints it implies."""
    services = services_only["counts"]["services"]
    endpoints = full["counts"]["endpoints"]
    rows = [("services only (noendpoints)", services_only), ("services and endpoint slices", full)]
    print("\nmemory of the measuring process, VmRSS after gc.collect(), MiB")
    print(f"  {'':30} {'before':>8} {'synced':>8} {'growth':>8} {'peak':>8}  index objects")
    for label, figures in rows:
        before, after = figures["rss_before_kib"], figures["rss_after_kib"]
        print(f"  {label:30} {before / 1024:8.1f} {after / 1024:8.1f} {(after - before) / 1024:8.1f}"
              f" {figures['peak_kib'] / 1024:8.1f}  {figures['live_bytes'] / 2**20:8.1f}")
    rss_services = services_only["rss_after_kib"] - services_only["rss_before_kib"]
    rss_endpoints = full["rss_after_kib"] - full["rss_before_kib"] - rss_services
    live_services = services_only["live_bytes"] / 1024
    live_endpoints = (full["live_bytes"] - services_only["live_bytes"]) / 1024
    print(f"  per service  = services-only growth / {services:,} services:"
          f"  {kib_per(rss_services, services)} RSS, {kib_per(live_services, services)} index objects")
    print(f"  per endpoint = (full growth - services-only growth) / {endpoints:,} endpoints:"
          f"  {kib_per(rss_endpoints, endpoints)} RSS, {kib_per(live_endpoints, endpoints)} index objects")


def print_delays(delays: list[float], rss_kib: int) -> None:
    """The distribution of event-to-index delays, and the memory after them."""
    print(f"\nevent to index: {len(delays):,} cluster-IP changes, each made once the last was seen,"
          " server's time.monotonic() before the change to the publish of the first snapshot showing it")
    print_distribution(delays)
    print(f"  VmRSS after the changes: {rss_kib / 1024:.1f} MiB")


def print_answer_delays(delays: list[float], rss_kib: int) -> None:
    """The distribution of event-to-answer delays, and the daemon's memory."""
    print(f"\nevent to answer: {len(delays):,} more cluster-IP changes, each made once the last was answered,"
          " with twistd kubernetai (one stanza, no cache) asked over UDP until it answers the new address")
    print_distribution(delays)
    print(f"  the daemon's VmRSS after the changes: {rss_kib / 1024:.1f} MiB")


def print_distribution(delays: list[float]) -> None:
    """p50, p99, max and min of C{delays} (seconds), in milliseconds."""
    milliseconds = [delay * 1000 for delay in delays]
    print(f"  p50 {percentile(milliseconds, 0.5):.2f} ms   p99 {percentile(milliseconds, 0.99):.2f} ms"
          f"   max {max(milliseconds):.2f} ms   (min {min(milliseconds):.2f} ms)")


def run(options) -> None:
    """Print the header, then every figure as it is measured."""
    print_header()
    server = ApiServerProcess(options)
    try:
        print_population(options, server)
        services_only = measure_services_only(server.url)
        cluster, full = measure_sync(server.url, with_endpoints=True)
        print_sync(services_only, full)
        print_memory(services_only, full)
        sys.stdout.flush()
        if options.changes:
            print_delays(measure_delays(cluster, server, options.changes), resident_kib())
        cluster.stop()
        if options.changes:
            print_answer_delays(*measure_answer_delays(server, options.changes, options.changes))
    finally:
        server.close()


def parse_options(argv=None):
    """The command line: population and change count; --serve and --services-only are for children."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000, help="ClusterIP services (default 10,000)")
    parser.add_argument("--headless", type=int, default=1_000,
                        help="headless services, each with one EndpointSlice (default 1,000)")
    parser.add_argument("--endpoints-per-slice", type=int, default=100, help="endpoints per slice (default 100)")
    parser.add_argument("--changes", type=int, default=1_000, help="cluster-IP changes timed (default 1,000)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    mode.add_argument("--services-only", metavar="URL", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> None:
    options = parse_options()
    if options.serve:
        serve(options)
    elif options.services_only:
        print(json.dumps(measure_sync(options.services_only, with_endpoints=False)[1]))
    else:
        run(options)


if __name__ == "__main__":
    main()
