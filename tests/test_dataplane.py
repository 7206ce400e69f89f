"""
One data plane for all workers (L{kubernetai.kubernetes.feed}), through C{twistd kubernetai --workers N}
against the test API server: the API server sees the lists and watches of one process whatever N is,
a change reaches every worker, a worker stopped stalls neither the supervisor nor the others, a
worker killed and started again gets the whole data (what changed while it was down too) without a
new list, /ready waits for every worker's data, a reload watches
again only for a changed stanza (a broken Corefile changes nothing), the reload plugin's check runs
in the supervisor, and failover in workers follows the supervisor's watches.
"""

import collections
import os
import signal

from twisted.internet import defer

from tests.support import wait_until
from tests.test_health_ready import get
from tests.test_prometheus import scrape
from tests.test_workers import (
    QUERIES,
    Supervised,
    WorkersTestCase,
    addresses,
    ask_from_many_sockets,
    corefile,
    per_worker,
)

# Services, EndpointSlices and Namespaces: the watches of a stanza with the default options.
WATCHES = 3
WEB = "web.default.svc.cluster.local"


def list_and_watch_requests(counts: collections.Counter) -> dict:
    """The API server's LIST and WATCH requests so far, by (verb, resource)."""
    return {key: count for key, count in counts.items() if key[0] in ("list", "watch")}


class DataPlaneTests(WorkersTestCase):
    # These tests run longer than the notification socket's queue of unread pings lasts.
    watchdog = False

    @defer.inlineCallbacks
    def wait_ready(self, supervised: Supervised):
        @defer.inlineCallbacks
        def ready():
            code, _, _ = yield get(supervised.http_port(), "/ready")
            return code == 200

        yield wait_until(ready, "/ready 200", timeout=30)

    @defer.inlineCallbacks
    def test_api_requests_do_not_grow_with_workers(self):
        requests, connections = {}, {}
        for workers in (1, 2, 4):
            before = collections.Counter(self.api.counts)
            accepted = self.api.connections_accepted
            supervised = yield self.start(workers)
            yield self.wait_ready(supervised)
            yield wait_until(lambda: self.api.open_watches == WATCHES, f"the watches of {workers} workers", timeout=30)
            requests[workers] = list_and_watch_requests(self.api.counts - before)
            connections[workers] = self.api.connections_accepted - accepted
            yield supervised.stop()
            yield wait_until(lambda: self.api.open_watches == 0, "every watch closed", timeout=30)
        one = {("list", "services"): 1, ("list", "endpointslices"): 1, ("list", "namespaces"): 1,
               ("watch", "services"): 1, ("watch", "endpointslices"): 1, ("watch", "namespaces"): 1}
        self.assertEqual(requests, {1: one, 2: one, 4: one})
        # A list's connection goes back to the client's pool, which a watch may take or not.
        self.assertTrue(all(WATCHES <= count <= 2 * WATCHES for count in connections.values()), connections)

    @defer.inlineCallbacks
    def test_a_change_is_answered_by_every_worker(self):
        supervised = yield self.start()
        yield self.wait_ready(supervised)
        self.api.service("default", "fresh", cluster_ips=["10.0.0.9"], ports=[{"name": "http", "port": 80}])

        @defer.inlineCallbacks
        def every_answer_has_it():
            answers = yield ask_from_many_sockets(supervised.dns_port, "fresh.default.svc.cluster.local")
            return addresses(answers) == {("10.0.0.9",)}

        yield wait_until(every_answer_has_it, "every worker answers the new service", timeout=30)
        samples = yield scrape(supervised)
        requests = per_worker(samples, "coredns_dns_requests_total")
        self.assertEqual(sorted(requests), ["0", "1"])
        self.assertTrue(all(count >= QUERIES / 8 for count in requests.values()), requests)

    @defer.inlineCallbacks
    def test_a_killed_worker_gets_everything_again_without_a_list(self):
        supervised = yield self.start()
        yield self.wait_ready(supervised)
        lists = self.api.counts["list", "services"]
        first, second = yield supervised.pids()
        os.kill(first, signal.SIGKILL)
        self.api.service("default", "late", cluster_ips=["10.0.0.8"], ports=[{"name": "http", "port": 80}])
        self.api.service("default", "web", cluster_ips=["10.0.0.2"], ports=[{"name": "http", "port": 80}])

        @defer.inlineCallbacks
        def started_again_and_ready():
            code, ready = yield supervised.verbose_ready()
            pids = [worker["pid"] for worker in ready["workers"]]
            return code == 200 and pids[0] not in (first, None)

        yield wait_until(started_again_and_ready, "worker 0 started again and ready", timeout=40)
        late = yield ask_from_many_sockets(supervised.dns_port, "late.default.svc.cluster.local")
        web = yield ask_from_many_sockets(supervised.dns_port, WEB)
        self.assertEqual((addresses(late), addresses(web)), ({("10.0.0.8",)}, {("10.0.0.2",)}))
        samples = yield scrape(supervised)
        self.assertEqual(sorted(per_worker(samples, "coredns_dns_requests_total")), ["0", "1"])
        self.assertEqual(self.api.counts["list", "services"], lists, "the new worker listed nothing")
        listed = {dict(labels)["kind"]: count for (name, labels), count in samples.items()
                  if name == "kubernetai_stanza_lists_total"}
        self.assertEqual(listed, {"services": 1, "endpointslices": 1, "namespaces": 1},
                         "the watches' metrics: the supervisor's alone")
        self.assertEqual(per_worker(samples, "kubernetai_stanza_lists_total"), {})
        self.assertEqual(per_worker(samples, "kubernetai_stanza_synced"), {"0": 1, "1": 1})
        _, ready = yield supervised.verbose_ready()
        self.assertEqual([worker["ready"]["stanzas"][0]["objects"]["services"] for worker in ready["workers"]], [2, 2])

    @defer.inlineCallbacks
    def test_a_stopped_worker_stalls_neither_the_supervisor_nor_the_others(self):
        supervised = yield self.start()
        yield self.wait_ready(supervised)
        stopped, running = yield supervised.pids()
        os.kill(stopped, signal.SIGSTOP)
        self.addCleanup(lambda: os.kill(stopped, signal.SIGCONT))
        # More changes than a pipe holds (64 KiB): a supervisor writing them in a blocking way would stall.
        for number in range(3000):
            self.api.service("default", f"svc-{number}", cluster_ips=[f"10.1.{number // 250}.{number % 250}"])

        @defer.inlineCallbacks
        def the_other_has_them():
            _, ready = yield supervised.verbose_ready()
            other = ready["workers"][1]
            return other["pid"] == running and other["ready"]["stanzas"][0]["objects"]["services"] == 3001

        yield wait_until(the_other_has_them, "worker 1 holding every change while worker 0 is stopped", timeout=30)
        os.kill(stopped, signal.SIGCONT)
        yield wait_until(lambda: every_worker_answers(supervised, "svc-2999.default.svc.cluster.local", "10.1.11.249"),
                         "worker 0 catching up", timeout=30)
        pids = yield supervised.pids()
        self.assertEqual(pids, [stopped, running], "no worker started again")

    @defer.inlineCallbacks
    def test_ready_only_once_every_worker_has_the_data(self):
        yield self.api.go_down()
        supervised = yield self.start(stanza_options="startup_timeout 1s")
        code, ready = yield supervised.verbose_ready()
        self.assertEqual(code, 503)
        self.assertEqual([worker["ready"]["stanzas"][0]["synced"] for worker in ready["workers"]], [False, False])
        self.assertIn("kubernetai #1 cluster.local.", " ".join(ready["not_ready"]))
        self.api.come_back()
        yield self.wait_ready(supervised)
        _, ready = yield supervised.verbose_ready()
        self.assertEqual([worker["ready"]["stanzas"][0]["synced"] for worker in ready["workers"]], [True, True])
        answers = yield ask_from_many_sockets(supervised.dns_port, WEB)
        self.assertEqual(addresses(answers), {("10.0.0.1",)})

    @defer.inlineCallbacks
    def test_a_reload_watches_again_only_for_a_changed_stanza(self):
        supervised = yield self.start()
        yield self.wait_ready(supervised)
        text = corefile(supervised.dns_port, supervised.http_port(), self.api.url, "192.0.2.8 eight.example")
        supervised.reload(text)

        @defer.inlineCallbacks
        def every_worker_answers(name: str, expected: set, ttl: int | None = None):
            answers = yield ask_from_many_sockets(supervised.dns_port, name)
            ttls = {rrset.ttl for answer in answers for rrset in answer.answer}
            return addresses(answers) == expected and ttl in (None, *ttls) and len(ttls) <= 1

        yield wait_until(lambda: every_worker_answers("eight.example", {("192.0.2.8",)}), "the new hosts", timeout=30)
        self.assertEqual(self.api.counts["list", "services"], 1, "the unchanged stanza kept its watches")
        supervised.reload(corefile(supervised.dns_port, supervised.http_port(), self.api.url, stanza_options="ttl 7"))
        yield wait_until(lambda: every_worker_answers(WEB, {("10.0.0.1",)}, ttl=7), "TTL 7 from every worker",
                         timeout=30)
        self.assertEqual(self.api.counts["list", "services"], 2, "the changed stanza listed once, not once per worker")

    @defer.inlineCallbacks
    def test_a_broken_corefile_is_refused_and_every_worker_serves_on(self):
        supervised = yield self.start()
        yield self.wait_ready(supervised)
        supervised.reload(corefile(supervised.dns_port, supervised.http_port(), self.api.url,
                                   stanza_options="no_such_option"))
        yield wait_until(lambda: "Restart failed: " in supervised.log(), "the refusal in the log", timeout=30)
        self.assertEqual(self.api.counts["list", "services"], 1)
        self.assertNotIn("Running configuration SHA512", supervised.log(), "no worker reloaded")
        answered = yield every_worker_answers(supervised, WEB, "10.0.0.1")
        self.assertTrue(answered)

    @defer.inlineCallbacks
    def test_the_reload_plugin_s_check_runs_in_the_supervisor(self):
        supervised = yield self.start()
        yield self.wait_ready(supervised)
        with_reload = corefile(supervised.dns_port, supervised.http_port(), self.api.url).replace(
            "    whoami\n", "    whoami\n    reload 2s 1s\n")
        supervised.reload(with_reload)
        yield wait_until(lambda: every_worker_answers(supervised, "seven.example", "192.0.2.7"), "the reload", 30)
        with open(supervised.path, "w") as text:
            text.write(with_reload.replace("192.0.2.7 seven.example", "192.0.2.9 nine.example"))
        yield wait_until(lambda: every_worker_answers(supervised, "nine.example", "192.0.2.9"),
                         "every worker reloaded by the check", timeout=30)
        self.assertEqual(self.api.counts["list", "services"], 1, "the unchanged stanza kept its watches")

    @defer.inlineCallbacks
    def test_failover_in_workers_follows_the_supervisor_s_watches(self):
        supervised = yield self.start(stanza_options="failover 1s")
        yield self.wait_ready(supervised)
        yield self.api.go_down()

        @defer.inlineCallbacks
        def every_worker(handing_on: bool):
            _, ready = yield supervised.verbose_ready()
            stale = [worker["ready"]["stanzas"][0]["stale_since"] is not None for worker in ready["workers"]]
            answers = yield ask_from_many_sockets(supervised.dns_port, WEB)
            return stale == [handing_on] * 2 and (("10.0.0.1",) in addresses(answers)) is not handing_on

        yield wait_until(lambda: every_worker(handing_on=True), "every worker stale, handing the name on", timeout=30)
        self.api.come_back()
        yield wait_until(lambda: every_worker(handing_on=False), "every worker answering again", timeout=30)


@defer.inlineCallbacks
def every_worker_answers(supervised: Supervised, name: str, address: str):
    """Whether C{name} A is C{address} from every client socket of L{ask_from_many_sockets}."""
    answers = yield ask_from_many_sockets(supervised.dns_port, name)
    return addresses(answers) == {(address,)}
