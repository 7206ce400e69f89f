# -*- test-case-name: tests.test_kubernetes_link -*-
"""
Tests for L{kubernetai.kubernetes.link}: what a stanza's log says about its
API server (one line when it fails, one when it is back, at most a reminder
a minute; the stanza named in each), and how a stanza catches up once its
API server is back (every watch wakes when one reconnects or /readyz
answers, without asking a server that keeps failing again and again).
"""

from twisted.internet import defer, reactor
from twisted.trial import unittest

from kubernetai.apiserver.server import ApiServer
from kubernetai.kubernetes.cluster import Cluster
from kubernetai.kubernetes.connection import api_client
from kubernetai.kubernetes.link import REMINDER_INTERVAL, Outage
from kubernetai.kubernetes.watch import Backoff
from tests.support import capture_logs, wait_until
from tests.test_health_ready import Running
from tests.test_kubernetes_watch import services_of, stanza_config

# A backoff no watch waits out during a test: whatever happens sooner comes from the link.
NEVER = Backoff(initial=120.0, cap=120.0)


class OutageTests(unittest.SynchronousTestCase):
    def test_first_failure_then_silence_then_back(self):
        outage = Outage(watches=3)
        lines = [
            outage.failed("services", "NewConnectionError: refused", 100.0),
            outage.failed("endpointslices", "NewConnectionError: refused", 100.1),
            outage.failed("services", "NewConnectionError: refused", 101.0),
            outage.connected("services", 105.0),
            outage.connected("endpointslices", 105.2),
            outage.connected("namespaces", 105.3),
        ]
        self.assertEqual(lines, ["services: NewConnectionError: refused; retrying", None, None, None,
                                 "connected again after 5.2s", None])

    def test_one_reminder_a_minute_at_most(self):
        outage = Outage(watches=2)
        outage.failed("services", "refused", 0.0)
        times = [10.0, REMINDER_INTERVAL - 1, REMINDER_INTERVAL, REMINDER_INTERVAL + 5, 2 * REMINDER_INTERVAL + 1]
        lines = [outage.failed(watch, "API server answered 500 Internal Server Error", now)
                 for watch, now in zip(["namespaces", "services"] * 3, times)]
        self.assertEqual(lines, [
            None, None,
            "still failing after 60s, 2 of 2 watches; namespaces: API server answered 500 Internal Server Error; "
            "retrying",
            None,
            "still failing after 121s, 2 of 2 watches; namespaces: API server answered 500 Internal Server Error; "
            "retrying",
        ])

    def test_each_forbidden_watch_is_told_once(self):
        outage = Outage(watches=3)
        forbidden = "API server answered 403 Forbidden"
        lines = [outage.failed(watch, forbidden, now)
                 for watch, now in (("services", 0.0), ("namespaces", 0.1), ("services", 5.0), ("endpointslices", 6.0),
                                    ("namespaces", 7.0))]
        self.assertEqual(lines, [f"services: {forbidden}; retrying", f"namespaces: {forbidden}; retrying", None,
                                 f"endpointslices: {forbidden}; retrying", None])
        outage.connected("services", 8.0)
        self.assertEqual(outage.failed("services", forbidden, 9.0), f"services: {forbidden}; retrying")

    def test_a_new_outage_is_told_again(self):
        outage = Outage(watches=1)
        first = outage.failed("services", "refused", 0.0)
        outage.connected("services", 1.0)
        again = outage.failed("services", "reset", 2.0)
        self.assertEqual((first, again), ("services: refused; retrying", "services: reset; retrying"))


class CatchUpTests(unittest.TestCase):
    """No watch waits out its backoff here (L{NEVER}): what catches up does so because the link woke it."""

    def setUp(self):
        self.api = ApiServer()
        self.api.start()
        self.addCleanup(self.api.stop)
        self.api.namespace("default")
        self.api.service("default", "web", cluster_ips=["10.0.0.10"])

    def start_cluster(self, body: str = "", probe: bool = True, probe_interval: float = 0.1,
                      backoffs: dict | None = None) -> Cluster:
        """A started cluster on the test API server whose watches back off as C{backoffs} says by kind
        (L{NEVER} by default); its probe every C{probe_interval} seconds, or none."""
        stanza = stanza_config(f"        endpoint {self.api.url}\n{body}")
        cluster = Cluster(stanza, *api_client(stanza), reactor)
        cluster.link.probe_interval = probe_interval
        if not probe:
            cluster.link.probe = None
        for watcher in cluster.watchers:
            watcher.backoff = (backoffs or {}).get(watcher.kind, NEVER)
        cluster.start()
        self.addCleanup(cluster.stop)
        return cluster

    def synced(self, cluster):
        return wait_until(lambda: cluster.synced, "the first sync")

    @defer.inlineCallbacks
    def outage_with_changes(self, cluster):
        """Take the API server down until every watch has failed; change things meanwhile; bring it back."""
        yield self.api.go_down()
        yield wait_until(lambda: not any(watcher.status.up for watcher in cluster.watchers), "every watch to fail")
        self.api.service("default", "while-down", cluster_ips=["10.0.0.11"])
        self.api.endpoint_slice("default", "web-1", "web", endpoints=[{"addresses": ["10.1.0.1"]}])
        self.api.namespace("new")
        self.api.come_back()

    def caught_up(self, cluster):
        return wait_until(lambda: ("default/while-down" in services_of(cluster)
                                 and cluster.snapshot.endpoints_of("default", "web")
                                 and "new" in cluster.snapshot.namespaces), "every change made during the outage")

    @defer.inlineCallbacks
    def test_readyz_answering_wakes_every_watch(self):
        cluster = self.start_cluster()
        yield self.synced(cluster)
        yield self.outage_with_changes(cluster)
        yield self.caught_up(cluster)
        self.assertGreaterEqual(self.api.counts[("get", "/readyz")], 1)

    @defer.inlineCallbacks
    def test_one_watch_reconnecting_wakes_the_others(self):
        cluster = self.start_cluster(probe=False, backoffs={"services": Backoff(initial=0.1, cap=0.2)})
        yield self.synced(cluster)
        yield self.outage_with_changes(cluster)
        yield self.caught_up(cluster)
        self.assertEqual(self.api.counts[("get", "/readyz")], 0)

    @defer.inlineCallbacks
    def test_namespaced_watches_wake_too(self):
        cluster = self.start_cluster("        namespaces default other")
        yield self.synced(cluster)
        self.assertEqual(len(cluster.watchers), 5)
        yield self.outage_with_changes(cluster)
        yield wait_until(lambda: ("default/while-down" in services_of(cluster)
                                and cluster.snapshot.endpoints_of("default", "web")), "the changes")

    @defer.inlineCallbacks
    def test_a_server_that_answers_readyz_but_refuses_the_watches_is_probed_once(self):
        for kind in ("services", "endpointslices", "namespaces"):
            self.api.forbid(kind)
        cluster = self.start_cluster(backoffs={"services": Backoff(initial=0.05, cap=0.1)})
        services, others = cluster.watchers[0], cluster.watchers[1:]
        yield wait_until(lambda: services.status.restarts >= 20, "the services watch to fail again and again")
        self.assertEqual(self.api.counts[("get", "/readyz")], 1, "no probe again while no watch has been up")
        yield wait_until(lambda: [watcher.status.restarts for watcher in others] == [2, 2],
                         "the others' first attempt, and their one retry when the probe woke them")
        self.api.forbid("services", False)
        yield wait_until(lambda: [watcher.status.restarts for watcher in others] == [3, 3],
                         "one more retry each once the services watch was back")
        self.assertTrue(services.status.up)
        self.assertEqual(self.api.counts[("get", "/readyz")], 1)

    @defer.inlineCallbacks
    def test_a_retry_after_is_waited_out_though_the_others_are_back(self):
        retry_after = 4
        cluster = self.start_cluster(probe=False, backoffs={
            "services": Backoff(initial=0.05, cap=5.0, random=lambda: 1.0),
            "endpointslices": Backoff(initial=0.5, cap=0.5, random=lambda: 1.0),
        })
        yield wait_until(lambda: self.api.open_watches == len(cluster.watchers), "every watch open")
        mark = self.api.last

        def later():
            requests = list(self.api.received)
            return requests[next(index for index, request in enumerate(requests) if request is mark) + 1:]

        self.api.fail_with(503, count=1, retry_after=retry_after)
        self.api.drop_watches()
        yield wait_until(lambda: [request.resource for request in later()].count("services") == 2
                         and all(watcher.status.up for watcher in cluster.watchers), "every watch back", 20)
        refused, *rest = later()
        woken_by = next(request for request in rest if request.resource == "endpointslices")
        retried = next(request for request in rest if request.resource == "services")
        self.assertEqual(refused.resource, "services")
        self.assertLess(woken_by.at, refused.at + retry_after / 2, "the others were back while it waited")
        self.assertGreaterEqual(retried.at - refused.at, retry_after * 0.95)


class LogTests(unittest.TestCase):
    """The log lines of a running daemon's stanzas, each naming its stanza."""

    def start_api(self) -> ApiServer:
        api = ApiServer()
        api.start()
        self.addCleanup(api.stop)
        api.namespace("default")
        api.service("default", "web", cluster_ips=["10.0.0.10"])
        api.service("default", "db", headless=True)
        return api

    def run_daemon(self, *endpoints: str, options: str = "startup_timeout 100ms") -> Running:
        stanzas = "".join(f"    kubernetai cluster.local {{\n        endpoint {url}\n        {options}\n"
                          f"        fallthrough\n    }}\n" for url in endpoints)
        return Running(self, f".:0 {{\n    bind 127.0.0.1\n{stanzas}}}\n")

    def lines_about(self, logs: list[str], stanza: str, text: str) -> list[str]:
        return [line for line in logs if line.startswith(f"kubernetai {stanza} (") and text in line]

    @defer.inlineCallbacks
    def test_a_dead_endpoint_is_one_line_not_one_per_watch_and_retry(self):
        logs = capture_logs(self)
        running = self.run_daemon("http://127.0.0.1:1")
        yield running.dns_port()
        (stanza,) = running.daemon.shared.stanzas
        yield wait_until(lambda: sum(w.status.restarts for w in stanza.cluster.watchers) >= 9, "nine failed attempts")
        (line,) = self.lines_about(logs, "#1 cluster.local.", "retrying")
        self.assertRegex(line, r"^kubernetai #1 cluster.local. \(http://127.0.0.1:1\): (services|endpointslices|"
                               r"namespaces): NewConnectionError: .*Connection refused; retrying$")

    @defer.inlineCallbacks
    def test_sync_outage_and_return_in_three_lines(self):
        logs = capture_logs(self)
        api = self.start_api()
        running = self.run_daemon(api.url, options="")
        yield running.dns_port()
        (stanza,) = running.daemon.shared.stanzas
        self.assertEqual(len(self.lines_about(logs, "#1 cluster.local.", ": synced in ")), 1)
        self.assertRegex(self.lines_about(logs, "#1 cluster.local.", "synced")[0],
                         r": synced in \d+\.\d\ds: 2 services, 0 endpoints, 1 namespaces$")
        yield api.go_down()
        yield wait_until(lambda: sum(w.status.restarts for w in stanza.cluster.watchers) >= 6, "six failed attempts")
        api.come_back()
        yield wait_until(lambda: all(w.status.up for w in stanza.cluster.watchers), "every watch back")
        about = [line for line in logs if line.startswith(f"kubernetai #1 cluster.local. ({api.url}): ")]
        self.assertEqual(len(about), 3, about)
        self.assertTrue(about[1].endswith("; retrying"), about)
        self.assertRegex(about[2], r": connected again after \d+\.\ds$")

    @defer.inlineCallbacks
    def test_a_forbidden_kind_names_its_stanza(self):
        logs = capture_logs(self)
        api = self.start_api()
        api.forbid("endpointslices")
        running = self.run_daemon(api.url, api.url)
        yield running.dns_port()
        yield wait_until(lambda: len(self.lines_about(logs, "#2 cluster.local.", "403")) == 1, "the second's 403")
        for label in ("#1 cluster.local.", "#2 cluster.local."):
            self.assertEqual(self.lines_about(logs, label, "403"),
                             [f"kubernetai {label} ({api.url}): endpointslices: API server answered 403 Forbidden; "
                              "retrying"])
