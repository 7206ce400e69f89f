"""
Reloading the Corefile: on demand (as SIGHUP does), by the reload plugin,
and through a real twistd process; a broken Corefile refused while the old
one serves; listening sockets and unchanged stanzas kept.
"""

import os
import signal
import subprocess

import dns.exception
import dns.message
import dns.query

from twisted.internet import defer, reactor, task
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from kubernetai.chain import build_server
from kubernetai.corefile import CorefileError, parse_corefile
from kubernetai.daemon import build_daemon
from kubernetai.apiserver.server import ApiServer
from tests.support import FakeUpstream, capture_logs, query, rcode_of, write_corefile
from tests.test_daemon import TWISTD, free_port, query_until_answered
from tests.test_health_ready import get

WHOAMI = ".:{port} {{\n    bind 127.0.0.1\n    whoami\n}}\n"
FORWARD = ".:{port} {{\n    bind 127.0.0.1\n    forward . 127.0.0.1:{upstream}\n}}\n"


class ReloadTests(unittest.TestCase):
    def start(self, text):
        self.path = write_corefile(self, text)
        self.root = build_daemon(self.path).service(reactor)
        self.root.startService()
        self.addCleanup(self.root.stopService)
        return self.root.dns.listening

    def rewrite(self, text):
        with open(self.path, "w") as corefile:
            corefile.write(text)

    def port(self):
        (port,) = {port for _, _, port in self.root.dns.addresses()}
        return port

    @defer.inlineCallbacks
    def test_good_corefile_takes_over_the_same_socket(self):
        upstream = FakeUpstream({("www.example.org.", "A"): ["192.0.2.1"]})
        upstream_port = upstream.start(self)
        port = free_port()
        yield self.start(WHOAMI.format(port=port))
        before = yield query(port, "www.example.org", "A")
        self.assertEqual(before.additional[0].name.to_text(), "www.example.org.")
        self.rewrite(FORWARD.format(port=port, upstream=upstream_port))
        reloaded = yield self.root.reload()
        self.assertTrue(reloaded)
        after = yield query(port, "www.example.org", "A")
        self.assertEqual([item.address for item in after.answer[0]], ["192.0.2.1"])
        self.assertEqual(self.port(), port)

    @defer.inlineCallbacks
    def test_no_query_fails_while_reloading(self):
        upstream = FakeUpstream({("www.example.org.", "A"): ["192.0.2.1"]})
        upstream_port = upstream.start(self)
        port = free_port()
        yield self.start(FORWARD.format(port=port, upstream=upstream_port))
        failures, answered = [], []

        def ask_in_a_loop(count: int) -> None:
            for _ in range(count):
                try:
                    reply = dns.query.udp(dns.message.make_query("www.example.org", "A"), "127.0.0.1",
                                          port=port, timeout=2)
                except dns.exception.Timeout:
                    failures.append("timeout")
                    continue
                (answered if reply.rcode() == 0 and reply.answer else failures).append(reply.rcode())

        asking = deferToThread(ask_in_a_loop, 300)
        for index in range(5):
            extra = "errors" if index % 2 else "log"
            self.rewrite(FORWARD.format(port=port, upstream=upstream_port).replace("{\n", "{\n    " + extra + "\n", 1))
            reloaded = yield self.root.reload()
            self.assertTrue(reloaded)
            yield task.deferLater(reactor, 0.02, lambda: None)
        yield asking
        self.assertEqual((failures, len(answered)), ([], 300))

    @defer.inlineCallbacks
    def test_broken_corefile_is_refused_and_the_old_one_serves(self):
        logs = capture_logs(self)
        port = free_port()
        yield self.start(WHOAMI.format(port=port))
        self.rewrite(".:{port} {{\n    whoami\n    bogus\n}}\n".format(port=port))
        reloaded = yield self.root.reload()
        self.assertFalse(reloaded)
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(rcode_of(reply), "NOERROR")
        self.assertEqual(reply.additional[0].name.to_text(), "www.example.org.")
        self.assertTrue(any(f"Restart failed: {self.path}:3: unknown directive 'bogus'" in line for line in logs))
        self.assertEqual(self.root.failed_reloads, 1)
        self.assertFalse(self.root.changed(), "a refused Corefile is not tried again until it changes")

    @defer.inlineCallbacks
    def test_blocks_added_and_removed(self):
        first, second = free_port(), free_port()
        yield self.start(WHOAMI.format(port=first))
        self.rewrite(WHOAMI.format(port=second))
        yield self.root.reload()
        self.assertEqual(self.port(), second)
        reply = yield query(second, "a.example", "A")
        self.assertEqual(rcode_of(reply), "NOERROR")

    @defer.inlineCallbacks
    def test_unchanged_stanzas_keep_their_watches(self):
        api = ApiServer()
        api.start()
        self.addCleanup(api.stop)
        api.namespace("default")
        api.service("default", "web", cluster_ips=["10.0.0.1"], ports=[{"name": "http", "port": 80}])
        port = free_port()
        stanza = f"    kubernetai cluster.local {{\n        endpoint {api.url}\n    }}\n"
        yield self.start(f".:{port} {{\n    bind 127.0.0.1\n{stanza}}}\n")
        cluster = self.root.daemon.shared.stanzas[0].cluster
        self.rewrite(f".:{port} {{\n    bind 127.0.0.1\n    errors\n{stanza}}}\n")
        yield self.root.reload()
        self.assertIs(self.root.daemon.shared.stanzas[0].cluster, cluster)
        self.assertEqual(api.counts[("list", "services")], 1)
        reply = yield query(port, "web.default.svc.cluster.local", "A")
        self.assertEqual([item.address for item in reply.answer[0]], ["10.0.0.1"])
        with_ttl = stanza.replace("    }", "        ttl 7\n    }", 1)
        self.rewrite(f".:{port} {{\n    bind 127.0.0.1\n{with_ttl}}}\n")
        yield self.root.reload()
        self.assertIsNot(self.root.daemon.shared.stanzas[0].cluster, cluster)

    @defer.inlineCallbacks
    def test_kept_stanzas_take_their_new_labels(self):
        """Stanzas with the same options each keep their own watches; the labels follow the new Corefile."""
        api = ApiServer()
        api.start()
        self.addCleanup(api.stop)
        port = free_port()
        stanza = "    kubernetai {zone} {{\n        endpoint " + api.url + "\n{extra}    }}\n"
        same = stanza.format(zone="cluster.local", extra="")
        yield self.start(f".:{port} {{\n    bind 127.0.0.1\n{same}{same}}}\n")
        clusters = [stanza.cluster for stanza in self.root.daemon.shared.stanzas]
        named = stanza.format(zone="cluster.local", extra="        name west\n")
        self.rewrite(f".:{port} {{\n    bind 127.0.0.1\n{stanza.format(zone='a.example', extra='')}{same}{named}}}\n")
        yield self.root.reload()
        stanzas = self.root.daemon.shared.stanzas
        self.assertEqual([stanza.label for stanza in stanzas], ["#1 a.example.", "#2 cluster.local.", "west"])
        self.assertEqual([stanza.cluster for stanza in stanzas[1:]], clusters)
        self.assertEqual([cluster.link.name for cluster in clusters],
                         [f"kubernetai #2 cluster.local. ({api.url})", f"kubernetai west ({api.url})"])

    @defer.inlineCallbacks
    def test_http_listeners_kept_so_lameduck_does_not_hold_a_reload(self):
        port = free_port()
        block = ".:{port} {{\n    bind 127.0.0.1\n    health 127.0.0.1:0 {{\n        lameduck 1h\n    }}\n    {extra}\n}}\n"
        yield self.start(block.format(port=port, extra="whoami"))
        (health,) = self.root.daemon.shared.http_listeners.values()
        listening = health.port
        self.rewrite(block.format(port=port, extra="ready 127.0.0.1:0\n    whoami"))
        reloaded = yield self.root.reload()
        self.assertTrue(reloaded)
        self.assertIs(self.root.daemon.shared.http_listeners[("127.0.0.1", 0)], health)
        self.assertIs(health.port, listening, "the listener was not closed and opened again")
        status, _, body = yield get(listening.getHost().port, "/ready")
        self.assertEqual((status, body), (200, b"OK"))
        health._holds.clear()

    @defer.inlineCallbacks
    def test_reload_plugin_notices_a_change(self):
        upstream = FakeUpstream({("www.example.org.", "A"): ["192.0.2.1"]})
        upstream_port = upstream.start(self)
        port = free_port()
        yield self.start(".:{port} {{\n    bind 127.0.0.1\n    reload 2s 1s\n    whoami\n}}\n".format(port=port))
        self.rewrite(FORWARD.format(port=port, upstream=upstream_port).replace("{\n", "{\n    reload 2s 1s\n", 1))
        for _ in range(60):
            if upstream.queries:
                break
            yield query(port, "www.example.org", "A")
            yield task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(upstream.queries[0][:2], ("www.example.org.", "A"))


class ParseTests(unittest.SynchronousTestCase):
    def test_errors(self):
        rows = [
            ("reload 1s", "Corefile:2: plugin/reload: interval value must be greater or equal to 2s"),
            ("reload 10s 500ms", "Corefile:2: plugin/reload: jitter value must be greater or equal to 1s"),
            ("reload 10s 2s 1", "Corefile:2: plugin/reload: unexpected argument '1'"),
            ("reload soon", "Corefile:2: plugin/reload: invalid duration 'soon'"),
        ]
        for line, message in rows:
            with self.assertRaises(CorefileError) as raised:
                build_server(parse_corefile(".:53 {\n " + line + "\n}\n", "Corefile")[0])
            self.assertIn(message, str(raised.exception), line)

    def test_jitter_capped_at_half_the_interval(self):
        config = build_server(parse_corefile(".:53 {\n reload 10s 9s\n}\n", "Corefile")[0])
        self.assertEqual(config.shared.reload, (10.0, 5.0))


class SighupTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_sighup_reloads_a_running_twistd(self):
        upstream = FakeUpstream({("www.example.org.", "A"): ["192.0.2.1"]})
        upstream_port = upstream.start(self)
        port = free_port()
        path = write_corefile(self, WHOAMI.format(port=port))
        process = subprocess.Popen([TWISTD, "-n", "--pidfile=", "kubernetai", "-c", path],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(process.wait)
        self.addCleanup(process.terminate)
        before = yield deferToThread(query_until_answered, port, "www.example.org")
        self.assertEqual(before.answer, [])
        with open(path, "w") as corefile:
            corefile.write(FORWARD.format(port=port, upstream=upstream_port))
        os.kill(process.pid, signal.SIGHUP)
        for _ in range(50):
            reply = yield deferToThread(query_until_answered, port, "www.example.org")
            if reply.answer:
                break
            yield task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual([item.address for item in reply.answer[0]], ["192.0.2.1"])
        self.assertIsNone(process.poll(), "still running")
