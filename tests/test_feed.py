"""
The feed from a supervisor's watches to its workers' indexes (L{kubernetai.kubernetes.feed}), its parts
on their own: messages cut anywhere, a worker's reader over a real pipe (snapshots, changes in order,
duplicates dropped, a gap answered by a request for a snapshot), and a supervisor's outlet for a worker
that falls behind.
"""

import os

from twisted.internet import defer, reactor
from twisted.trial import unittest

from kubernetai.corefile import parse_directives
from kubernetai.kubernetes.cluster import Cluster
from kubernetai.kubernetes.config import parse_stanza
from kubernetai.kubernetes.connection import api_client
from kubernetai.kubernetes.feed import FeedReader, Frames, Hub, Outlet, frame
from kubernetai.kubernetes.kinds import Changed, Deleted, Kind, Listed
from kubernetai.kubernetes.objects import Namespace, Service
from kubernetai.kubernetes.stanza import Stanza
from kubernetai.kubernetes.watch import WatchStatus
from tests.support import wait_until

URL = "http://127.0.0.1:1"


def stanza_config():
    directive = parse_directives(f"kubernetai cluster.local {{\n    endpoint {URL}\n}}\n", "Corefile")[0]
    return parse_stanza(directive, ["."])


def service(name: str, ip: str) -> Service:
    return Service("default", name, "ClusterIP", (ip,), (), None)


def listed(*services: Service) -> list[Listed]:
    """What a snapshot of a stanza with the default watches holds: C{services} in namespace default."""
    return [Listed(Kind.SERVICES, None, list(services)), Listed(Kind.ENDPOINT_SLICES, None, []),
            Listed(Kind.NAMESPACES, None, [Namespace("default")])]


class FramesTests(unittest.SynchronousTestCase):
    def test_messages_cut_anywhere_come_out_whole(self):
        data = frame(("status", 1, [])) + frame(("reload",))
        frames = Frames()
        out = [frames.feed(data[:3]), frames.feed(data[3:len(data) - 2]), frames.feed(data[len(data) - 2:])]
        self.assertEqual(out, [[], [(("status", 1, []), len(frame(("status", 1, []))))],
                               [(("reload",), len(frame(("reload",))))]])


class FeedReaderTests(unittest.TestCase):
    def setUp(self):
        read_end, self.write_end = os.pipe()
        self.addCleanup(os.close, self.write_end)
        self.reports = []
        self.reader = FeedReader(read_end, reactor, self.reports.append)
        self.written = 0
        self.send(("layout", [(7, stanza_config(), URL, "kubernetai #1 cluster.local. (http://127.0.0.1:1)")]))
        self.reader.read_layout()
        self.replica = self.reader.replicas[7]
        self.addCleanup(self.replica.stop)
        self.reloads = []
        self.reader.start(lambda: self.reloads.append(True))

    def send(self, message: tuple) -> None:
        data = frame(message)
        self.written += len(data)
        os.write(self.write_end, data)

    def services(self) -> dict:
        return {name: service.cluster_ips for (_, name), service in self.replica.snapshot.services.items()}

    @defer.inlineCallbacks
    def taken_all(self):
        yield wait_until(lambda: {"taken": self.written} in self.reports, "the reader to take every byte")

    def test_the_layout_gives_the_stanza_its_replica(self):
        self.assertEqual(self.reader.replicas_by_config(), {stanza_config(): [self.replica]})
        self.assertFalse(self.replica.synced)

    @defer.inlineCallbacks
    def test_a_snapshot_then_changes_in_order(self):
        down = WatchStatus(Kind.SERVICES, None, down_since=1000.0)
        self.send(("snapshot", 7, 41, listed(service("web", "10.0.0.1")), [down]))
        self.send(("changes", 7, 42, [Changed(Kind.SERVICES, service("api", "10.0.0.2"))]))
        self.send(("changes", 7, 43, [Deleted(Kind.SERVICES, service("web", "10.0.0.1"))]))
        yield self.taken_all()
        yield wait_until(lambda: self.services() == {"api": ("10.0.0.2",)}, "the changes applied")
        self.assertTrue(self.replica.synced)
        self.assertEqual((self.replica.stale_since(), self.replica.seq), (1000.0, 43))

    @defer.inlineCallbacks
    def test_changes_before_a_snapshot_and_duplicates_are_dropped(self):
        self.send(("changes", 7, 3, [Changed(Kind.SERVICES, service("early", "10.0.0.3"))]))
        self.send(("snapshot", 7, 5, listed(service("web", "10.0.0.1")), []))
        self.send(("changes", 7, 5, [Changed(Kind.SERVICES, service("again", "10.0.0.5"))]))
        self.send(("changes", 7, 6, [Changed(Kind.SERVICES, service("next", "10.0.0.6"))]))
        yield self.taken_all()
        yield wait_until(lambda: "next" in self.services(), "change 6 applied")
        self.assertEqual(self.services(), {"web": ("10.0.0.1",), "next": ("10.0.0.6",)})

    @defer.inlineCallbacks
    def test_a_gap_asks_for_a_snapshot_and_waits_for_it(self):
        self.send(("snapshot", 7, 5, listed(service("web", "10.0.0.1")), []))
        self.send(("changes", 7, 7, [Changed(Kind.SERVICES, service("skipped", "10.0.0.7"))]))
        self.send(("changes", 7, 8, [Changed(Kind.SERVICES, service("after", "10.0.0.8"))]))
        yield self.taken_all()
        self.assertIn({"resync": 7}, self.reports)
        self.assertIsNone(self.replica.seq)
        self.send(("snapshot", 7, 8, listed(service("web", "10.0.0.1"), service("after", "10.0.0.8")), []))
        yield self.taken_all()
        yield wait_until(lambda: "after" in self.services(), "the snapshot applied")
        self.assertEqual(self.services(), {"web": ("10.0.0.1",), "after": ("10.0.0.8",)})

    @defer.inlineCallbacks
    def test_status_and_reload(self):
        up = WatchStatus(Kind.SERVICES, None, up=True, last_event=2000.0)
        self.send(("status", 7, [up]))
        self.send(("reload",))
        yield self.taken_all()
        yield wait_until(lambda: self.reloads == [True], "the reload called on the reactor")
        self.assertEqual(self.replica.status()["last_event"], 2000.0)


class OutletTests(unittest.SynchronousTestCase):
    def setUp(self):
        config = stanza_config()
        self.cluster = Cluster(config, *api_client(config), reactor)
        self.hub = Hub(reactor)
        self.hub.publish([Stanza("kubernetai", config, self.cluster, ("127.0.0.1",))])
        self.written = []
        self.outlet = Outlet(self.hub, self.written.append, "worker 0", limit=50)
        self.hub.attach(self.outlet)

    def snapshot_requests(self) -> int:
        requests = 0
        while not self.cluster.changes.empty():
            requests += callable(self.cluster.changes.get_nowait())
        return requests

    def test_a_new_worker_gets_the_layout_and_waits_for_snapshots(self):
        self.assertEqual(len(self.written), 1, "the layout")
        self.assertEqual((self.outlet.waiting, self.snapshot_requests()), ({1}, 1))
        self.hub.broadcast(1, b"change")
        self.assertEqual(len(self.written), 1, "no change before the snapshot")
        self.outlet.deliver_snapshot(1, b"snapshot")
        self.hub.broadcast(1, b"change")
        self.assertEqual(self.written[1:], [b"snapshot", b"change"])

    def test_a_worker_too_far_behind_gets_a_fresh_snapshot_once_it_caught_up(self):
        self.outlet.deliver_snapshot(1, b"snapshot")
        self.snapshot_requests()
        for _ in range(3):
            self.hub.broadcast(1, b"x" * 60)
        self.assertEqual(self.written[-2:], [b"snapshot", b"x" * 60], "a second change would pass the limit")
        self.outlet.taken(self.outlet.written - 1)
        self.assertEqual(self.snapshot_requests(), 0, "not all taken yet")
        self.outlet.taken(self.outlet.written)
        self.assertEqual((self.outlet.behind, self.outlet.waiting, self.snapshot_requests()), (False, {1}, 1))
