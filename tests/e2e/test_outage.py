"""
A real kube-apiserver going away and etcd compacting, under a running daemon:

  - the API server process stopped for 15 s and started again while a steady loop asks
    for names that exist throughout: not one failed answer; the daemon lists again after
    the new server's 410 (C{kubernetai_stanza_lists_total}), and sees changes again
    within 5 s of that;
  - etcd's history compacted under the daemon's running watches: changes made before and
    after are seen within 2 s.
"""

from __future__ import annotations

import threading
import time

import dns.exception

from kubernetai.apiserver.resources import make_endpoint_slice, make_service
from tests.e2e.support import Daemon, E2ETestCase, eventually, records, stanza

NAMESPACE = "outage"
HTTP = {"name": "http", "port": 80, "protocol": "TCP"}
DOWN_FOR = 15.0
LISTED_AGAIN_WITHIN = 30.0
SEEN_AGAIN_WITHIN = 5.0
SEEN_WITHIN = 2.0
LISTS = "kubernetai_stanza_lists_total"
WATCHED = ("services", "endpointslices", "namespaces")


def fqdn(service: str) -> str:
    return f"{service}.{NAMESPACE}.svc.cluster.local."


# Names that exist throughout, and the answer each must always get.
STEADY = {
    fqdn("steady"): [f"{fqdn('steady')} A 10.0.5.1"],
    fqdn("steady-headless"): [f"{fqdn('steady-headless')} A 172.2.0.1"],
}


class QueryLoop(threading.Thread):
    """Asks every steady name in turn, over UDP, until stopped; keeps every wrong or missing answer."""

    def __init__(self, daemon: Daemon) -> None:
        super().__init__(daemon=True)
        self.daemon_under_test = daemon
        self.stopping = threading.Event()
        self.asked = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            for question, expected in STEADY.items():
                self.asked += 1
                try:
                    got = records(self.daemon_under_test.ask(question))
                except dns.exception.Timeout:
                    got = "no answer"
                if got != expected:
                    self.failures.append(f"{time.strftime('%H:%M:%S')} {question}: {got}")
            self.stopping.wait(0.02)

    def stop(self) -> None:
        self.stopping.set()
        self.join()


class OutageTests(E2ETestCase):
    def make_objects(self) -> None:
        self.admin.namespace(NAMESPACE)
        self.admin.service(make_service(NAMESPACE, "steady", ["10.0.5.1"], [HTTP]))
        self.admin.service(make_service(NAMESPACE, "steady-headless", headless=True, ports=[HTTP]))
        self.admin.endpoint_slice(make_endpoint_slice(NAMESPACE, "steady-headless-a", "steady-headless",
                                                      [{"addresses": ["172.2.0.1"]}], [HTTP]))

    def setUp(self) -> None:
        super().setUp()
        self.daemon = Daemon(self, stanza("cluster.local", self.identities.token))
        self.daemon.wait_ready()

    def seen(self, service: str, address: str, within: float) -> None:
        expected = [f"{fqdn(service)} A {address}"]
        eventually(lambda: records(self.daemon.ask(fqdn(service))) == expected, within, f"{service} at {address}")

    def test_apiserver_stopped_and_started_again(self):
        lists = {kind: self.daemon.metric(LISTS, kind=kind) for kind in WATCHED}
        loop = QueryLoop(self.daemon)
        loop.start()
        self.addCleanup(loop.stop)
        self.plane.stop_apiserver()
        time.sleep(DOWN_FOR)
        self.plane.start_apiserver()
        eventually(lambda: all(self.daemon.metric(LISTS, kind=kind) > lists[kind] for kind in WATCHED),
                   LISTED_AGAIN_WITHIN, "every watch listed again after the restart")
        self.admin.service(make_service(NAMESPACE, "after-restart", ["10.0.5.2"], [HTTP]))
        self.seen("after-restart", "10.0.5.2", SEEN_AGAIN_WITHIN)
        loop.stop()
        self.assertEqual(loop.failures, [])
        self.assertGreater(loop.asked, 100)

    def test_etcd_compacted_under_running_watches(self):
        self.admin.service(make_service(NAMESPACE, "before-compaction", ["10.0.5.3"], [HTTP]))
        self.seen("before-compaction", "10.0.5.3", SEEN_WITHIN)
        self.plane.compact()
        self.admin.service(make_service(NAMESPACE, "after-compaction", ["10.0.5.4"], [HTTP]))
        self.seen("after-compaction", "10.0.5.4", SEEN_WITHIN)
        self.admin.delete("services", NAMESPACE, "before-compaction")
        eventually(lambda: records(self.daemon.ask(fqdn("before-compaction"))) == [], SEEN_WITHIN,
                   "before-compaction gone")
