"""
A daemon under churn keeps its memory: thousands of service changes on the
API server, each followed by a question for the changed name and one for a
name never asked before, leave what the process holds where it was once its
bounded tables have filled.

What the process holds is read with tracemalloc, started once the tables are
full, after a collection: the bytes of every Python object allocated since
and still alive.  Unlike the resident set size, it does not depend on what
the allocator keeps of freed memory or on what earlier tests left, so it
grows by what the changes leave behind and nothing else.
"""

import gc
import socket
import time
import tracemalloc

import dns.message
import dns.rcode
from twisted.internet import defer, reactor
from twisted.internet.threads import blockingCallFromThread, deferToThread
from twisted.trial import unittest

from kubernetai.apiserver.server import ApiServer
from tests.test_health_ready import Running

SERVICES = 300
HEADLESS = 200
ENDPOINTS = 100
# Enough changes to fill the kept replies, then enough to show a leak: an old snapshot of this
# population kept per change is about 20 KB (20 MB over them).
WARM_UP_CHANGES = 1000
MEASURED_CHANGES = 1000
# What they may add: the bounded tables (kept replies of 512 KB, the cache's 1,024 denials, the
# snapshot's shards) refilled with objects tracemalloc sees, as it started after the first fill.
GROWTH_BOUND = 4 * 2**20
READY_BYTES = 2**19
PORTS = [{"name": "http", "port": 80}]

CHURNED = """\
cluster.local:0 {{
    bind 127.0.0.1
    prometheus 127.0.0.1:0
    {cache}
    kubernetai cluster.local {{
        endpoint {api}
    }}
}}
"""
CACHE = "cache 30 { success 1000\n denial 1000 }"


def populate(api: ApiServer) -> None:
    """SERVICES ClusterIP services and HEADLESS headless ones of ENDPOINTS endpoints, in namespace churn."""
    api.namespace("churn")
    for number in range(SERVICES):
        api.service("churn", f"svc-{number}", cluster_ips=[f"10.96.{number >> 8}.{number & 255}"], ports=PORTS)
    for number in range(HEADLESS):
        api.service("churn", f"headless-{number}", headless=True, ports=PORTS)
        endpoints = [{"addresses": [f"10.{128 + number}.0.{index}"], "hostname": f"pod-{index}"}
                     for index in range(ENDPOINTS)]
        api.endpoint_slice("churn", f"headless-{number}-x", f"headless-{number}", endpoints=endpoints, ports=PORTS)


def change(api: ApiServer, number: int) -> tuple[str, str]:
    """Give a service a cluster IP no service had before; its name and that IP."""
    name, ip = f"svc-{number % SERVICES}", f"10.{100 + number // 65536 % 10}.{number >> 8 & 255}.{number & 255}"
    api.service("churn", name, cluster_ips=[ip], ports=PORTS)
    return f"{name}.churn.svc.cluster.local", ip


def ask(sock: socket.socket, name: str) -> dns.message.Message:
    sock.send(dns.message.make_query(name, "A").to_wire())
    return dns.message.from_wire(sock.recv(65535))


def churn(api: ApiServer, cluster, port: int, first: int, count: int) -> None:
    """In a thread: C{count} changes, each followed, once C{cluster}'s snapshot has it, by a question
    for its name (which the cache may answer from before the change) and one for a name no one asked
    before (NXDOMAIN)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        sock.settimeout(5)
        for number in range(first, first + count):
            name, ip = blockingCallFromThread(reactor, change, api, number)
            while ip not in cluster.snapshot.service("churn", name.split(".")[0]).cluster_ips:
                time.sleep(0.0005)
            ask(sock, name)
            reply = ask(sock, f"never-{number}.churn.svc.cluster.local")
            assert reply.rcode() == dns.rcode.NXDOMAIN, reply


def traced_bytes() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


class ChurnTests(unittest.TestCase):

    @defer.inlineCallbacks
    def assertChurnKeepsMemory(self, cache: str):
        api = ApiServer(history_size=100)
        api.start()
        self.addCleanup(api.stop)
        populate(api)
        running = Running(self, CHURNED.format(cache=cache, api=api.url))
        port = yield running.dns_port()
        (table,) = running.dns.tables.values()
        table.ready_bytes_limit = READY_BYTES
        (stanza,) = running.daemon.shared.stanzas
        yield deferToThread(churn, api, stanza.cluster, port, 0, WARM_UP_CHANGES)
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        before = traced_bytes()
        yield deferToThread(churn, api, stanza.cluster, port, WARM_UP_CHANGES, MEASURED_CHANGES)
        grown = traced_bytes() - before
        self.assertLess(grown, GROWTH_BOUND, f"{grown:,} bytes more after {MEASURED_CHANGES} changes")

    def test_churn_keeps_memory(self):
        return self.assertChurnKeepsMemory("")

    def test_churn_keeps_memory_with_cache(self):
        return self.assertChurnKeepsMemory(CACHE)
