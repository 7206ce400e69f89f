"""
health and ready over real HTTP on 127.0.0.1: /health, /ready while stanzas
sync late or never, the verbose view, until-ready and continuous monitoring,
lameduck on the way down, one listener per address, and every Corefile
mistake refused with its line.
"""

import json

from twisted.internet import defer, reactor
from twisted.internet.error import ConnectionRefusedError
from twisted.trial import unittest
from twisted.web.client import Agent, readBody

from kubernetai.chain import Shared, build_server
from kubernetai.corefile import CorefileError, parse_corefile
from kubernetai.daemon import build_daemon
from kubernetai.httpservice import HTTPService
from kubernetai.apiserver.server import ApiServer
from tests.support import capture_logs, one_test_per_row, query, refusal, wait_until, write_corefile
from tests.test_daemon import free_port


@defer.inlineCallbacks
def get(port: int, path: str, method: bytes = b"GET"):
    """(status code, content type, body) of C{method} C{path} on 127.0.0.1:C{port}."""
    response = yield Agent(reactor).request(method, f"http://127.0.0.1:{port}{path}".encode())
    body = yield readBody(response)
    (content_type,) = response.headers.getRawHeaders(b"content-type")
    return response.code, content_type, body


class Running:
    """A daemon started from Corefile text, stopped when the test ends unless the test stopped it."""

    def __init__(self, testcase: unittest.TestCase, text: str) -> None:
        self.daemon = build_daemon(write_corefile(testcase, text))
        self.root = self.daemon.service(reactor)
        self.root.startService()
        testcase.addCleanup(lambda: self.root.stopService() if self.root.running else None)
        self.dns = self.root.getServiceNamed("dns")

    def http(self, host: str = "127.0.0.1", port: int = 0) -> HTTPService:
        """The HTTP listener for (host, port) as the Corefile names it."""
        return self.daemon.shared.http_listeners[(host, port)]

    def http_port(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """The port the listener for (host, port) got."""
        return self.http(host, port).port.getHost().port

    @defer.inlineCallbacks
    def dns_port(self):
        """The DNS port, once the daemon listens."""
        yield self.dns.listening
        (port,) = {port for _, _, port in self.dns.addresses()}
        return port


def stanza(zone: str, url: str, extra: str = "") -> str:
    return f"    kubernetai {zone} {{\n        endpoint {url}\n        {extra}\n    }}\n"


class HealthTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_ok(self):
        running = Running(self, ".:0 {\n    bind 127.0.0.1\n    health 127.0.0.1:0\n    whoami\n}\n")
        answer = yield get(running.http_port(), "/health")
        self.assertEqual(answer, (200, b"text/plain; charset=utf-8", b"OK"))

    @defer.inlineCallbacks
    def test_no_host_is_every_address(self):
        running = Running(self, ".:0 {\n    bind 127.0.0.1\n    health :0\n}\n")
        answer = yield get(running.http_port(host=""), "/health")
        self.assertEqual(answer[::2], (200, b"OK"))

    @defer.inlineCallbacks
    def test_any_method_but_only_its_path(self):
        """As Go's ServeMux: /health for any method, 404 for anything else."""
        port = Running(self, ".:0 {\n    bind 127.0.0.1\n    health 127.0.0.1:0\n}\n").http_port()
        posted = yield get(port, "/health?probe=1", b"POST")
        self.assertEqual((posted[0], posted[2]), (200, b"OK"))
        for path in ("/", "/health/", "/healthz", "/ready"):
            code, _, _ = yield get(port, path)
            self.assertEqual(code, 404, path)

    @defer.inlineCallbacks
    def test_one_listener_per_address_across_blocks(self):
        running = Running(self, "a.example:0 {\n    bind 127.0.0.1\n    health 127.0.0.1:0\n    ready 127.0.0.1:0\n}\n"
                                "b.example:0 {\n    bind 127.0.0.1\n    health 127.0.0.1:0\n}\n")
        listeners = [each for each in running.root.running_services if isinstance(each, HTTPService)]
        self.assertEqual(listeners, [running.http()])
        health = yield get(running.http_port(), "/health")
        ready = yield get(running.http_port(), "/ready")
        self.assertEqual((health[2], ready[2]), (b"OK", b"OK"))

    @defer.inlineCallbacks
    def test_two_addresses_serve_the_same_health(self):
        running = Running(self, "a.example:0 {\n    bind 127.0.0.1\n    health 127.0.0.1:0\n}\n"
                                "b.example:0 {\n    bind 127.0.0.1\n    health localhost:0\n}\n")
        by_ip = yield get(running.http_port(), "/health")
        by_name = yield get(running.http_port("localhost"), "/health")
        self.assertEqual((by_ip[2], by_name[2]), (b"OK", b"OK"))
        self.assertNotEqual(running.http_port(), running.http_port("localhost"))


class LameduckTests(unittest.TestCase):
    """Stopping waits the lameduck out; DNS and /health answer meanwhile, /ready does not."""

    CONFIG = ".:0 {{\n    bind 127.0.0.1\n    whoami\n    ready {ready}\n    health 127.0.0.1:0 {{\n" \
             "        lameduck 1s\n    }}\n}}\n"

    @defer.inlineCallbacks
    def test_dns_and_health_answer_until_the_lameduck_ends(self):
        logs = capture_logs(self)
        running = Running(self, self.CONFIG.format(ready="127.0.0.1:0"))
        dns_port = yield running.dns_port()
        http_port = running.http_port()
        stopped = running.root.stopService()
        self.assertFalse(stopped.called)
        health = yield get(http_port, "/health")
        ready = yield get(http_port, "/ready")
        reply = yield query(dns_port, "www.example.org", "A")
        self.assertFalse(stopped.called, "the lameduck ended before the queries were answered")
        self.assertEqual(health[::2], (200, b"OK"))
        self.assertEqual(ready[::2], (503, b"Shutting down"))
        self.assertEqual(reply.additional[0][0].to_text(), "127.0.0.1")
        self.assertIn("Going into lameduck mode for 1s", logs)
        yield stopped
        self.assertEqual(running.dns.ports, [])
        yield self.assertFailure(get(http_port, "/health"), ConnectionRefusedError)

    @defer.inlineCallbacks
    def test_ready_on_its_own_address_closes_at_once(self):
        running = Running(self, self.CONFIG.format(ready="localhost:0"))
        ready_port = running.http("localhost").port
        port_number = ready_port.getHost().port
        stopped = running.root.stopService()
        yield wait_until(lambda: not ready_port.connected, "ready stops listening")
        self.assertFalse(stopped.called)
        yield self.assertFailure(get(port_number, "/ready"), ConnectionRefusedError)
        yield stopped

    @defer.inlineCallbacks
    def test_without_lameduck_stopping_waits_for_nothing(self):
        running = Running(self, ".:0 {\n    bind 127.0.0.1\n    health 127.0.0.1:0\n}\n")
        http_port = running.http_port()
        yield running.root.stopService()
        yield self.assertFailure(get(http_port, "/health"), ConnectionRefusedError)


class ReadyTests(unittest.TestCase):
    def start_api(self) -> ApiServer:
        api = ApiServer()
        api.start()
        self.addCleanup(api.stop)
        api.namespace("default")
        api.service("default", "web", cluster_ips=["10.0.0.10"], ports=[{"name": "http", "port": 80}])
        return api

    @defer.inlineCallbacks
    def test_names_the_stanza_not_synced(self):
        api = self.start_api()
        stanzas = stanza("east.local", api.url) + stanza("dead.local", "http://127.0.0.1:1", "startup_timeout 100ms")
        running = Running(self, f".:0 {{\n    bind 127.0.0.1\n    ready 127.0.0.1:0\n{stanzas}}}\n")
        yield running.dns_port()
        answer = yield get(running.http_port(), "/ready")
        self.assertEqual(answer, (503, b"text/plain; charset=utf-8", b"kubernetai #2 dead.local. (http://127.0.0.1:1)"))

    @defer.inlineCallbacks
    def test_ready_once_synced(self):
        api = self.start_api()
        yield api.go_down()
        stanzas = stanza("cluster.local", api.url, "startup_timeout 100ms")
        running = Running(self, f".:0 {{\n    bind 127.0.0.1\n    ready 127.0.0.1:0\n{stanzas}}}\n")
        yield running.dns_port()
        before = yield get(running.http_port(), "/ready")
        self.assertEqual(before[::2], (503, f"kubernetai #1 cluster.local. ({api.url})".encode()))
        api.come_back()
        yield wait_until(lambda: get(running.http_port(), "/ready").addCallback(lambda a: a[0] == 200), "ready")
        after = yield get(running.http_port(), "/ready")
        self.assertEqual(after[::2], (200, b"OK"))

    @defer.inlineCallbacks
    def test_verbose_view(self):
        api = self.start_api()
        stanzas = stanza("east.local in-addr.arpa", api.url) + stanza("dead.local", "http://127.0.0.1:1",
                                                                      "startup_timeout 100ms")
        running = Running(self, f".:0 {{\n    bind 127.0.0.1\n    ready 127.0.0.1:0\n{stanzas}}}\n")
        yield running.dns_port()
        code, content_type, body = yield get(running.http_port(), "/ready?verbose")
        view = json.loads(body)
        self.assertEqual((code, content_type), (503, b"application/json"))
        self.assertEqual((view["status"], view["not_ready"]),
                         ("not ready", ["kubernetai #2 dead.local. (http://127.0.0.1:1)"]))
        east, dead = view["stanzas"]
        self.assertEqual(
            (east["name"], east["stanza"], east["zones"], east["synced"], east["api_server"], east["stale_since"]),
            (f"kubernetai #1 east.local. in-addr.arpa. ({api.url})", "#1 east.local. in-addr.arpa.",
             ["east.local.", "in-addr.arpa."], True, api.url, None),
        )
        self.assertEqual((east["objects"]["services"], east["objects"]["namespaces"]), (1, 1))
        self.assertIsInstance(east["last_event"], float)
        self.assertTrue(all(watch["up"] for watch in east["watches"]), east["watches"])
        self.assertEqual((dead["synced"], dead["api_server"], dead["last_event"]), (False, "http://127.0.0.1:1", None))
        self.assertIsInstance(dead["stale_since"], float)
        self.assertTrue(all(not watch["up"] and watch["last_error"] for watch in dead["watches"]), dead["watches"])
        self.assertEqual(sorted(east), sorted(["name", "stanza", "zones", "synced", "api_server", "last_event",
                                               "stale_since", "objects", "watches"]))

    @defer.inlineCallbacks
    def test_without_reporters_ready_at_once(self):
        running = Running(self, ".:0 {\n    bind 127.0.0.1\n    ready 127.0.0.1:0\n    whoami\n}\n")
        answer = yield get(running.http_port(), "/ready")
        verbose = yield get(running.http_port(), "/ready?verbose")
        self.assertEqual(answer[::2], (200, b"OK"))
        self.assertEqual(json.loads(verbose[2]), {"status": "ok", "not_ready": [], "stanzas": []})

    @defer.inlineCallbacks
    def test_not_ready_until_the_dns_ports_listen(self):
        path = write_corefile(self, ".:0 {\n    bind 127.0.0.1\n    ready 127.0.0.1:0\n    whoami\n}\n")
        daemon = build_daemon(path)
        last_stanza_synced = defer.Deferred()
        daemon.configs[0].startup_waits.append(lambda: last_stanza_synced)
        root = daemon.service(reactor)
        root.startService()
        self.addCleanup(root.stopService)
        http_port = daemon.shared.http_listeners[("127.0.0.1", 0)].port.getHost().port
        before = yield get(http_port, "/ready")
        last_stanza_synced.callback(None)
        after = yield get(http_port, "/ready")
        self.assertEqual((before[::2], after[::2]), ((503, b"dns listeners"), (200, b"OK")))

    @defer.inlineCallbacks
    def check_monitor(self, monitor: str, after_relapse: tuple):
        """A reporter not ready, then ready, then not ready again: what /ready answers each time."""
        running = Running(self, f".:0 {{\n    bind 127.0.0.1\n    ready 127.0.0.1:0 {{\n        monitor {monitor}\n"
                                f"    }}\n}}\n")
        state = {"b": False}
        running.daemon.shared.readiness += [("b", lambda: state["b"]), ("a", lambda: False)]
        answers = []
        for b_ready, a_ready in ((False, False), (True, False), (False, True)):
            state["b"] = b_ready
            running.daemon.shared.readiness[-1] = ("a", lambda a_ready=a_ready: a_ready)
            answer = yield get(running.http_port(), "/ready")
            answers.append(answer[::2])
        self.assertEqual(answers, [(503, b"a,b"), (503, b"a"), after_relapse])

    def test_until_ready_asks_a_ready_reporter_no_more(self):
        return self.check_monitor("until-ready", (200, b"OK"))

    def test_continuously_asks_every_time(self):
        return self.check_monitor("continuously", (503, b"b"))


def build(text: str, shared: Shared | None = None):
    """The server configs of Corefile C{text}, built with one Shared."""
    shared = shared or Shared()
    return [build_server(block, shared) for block in parse_corefile(text, "Corefile")]


# health and ready lines that parse: the plan line and the address they listen on.
LISTENERS = [
    ("health", "health :8080", ("", 8080)),
    ("health localhost:1234", "health localhost:1234", ("localhost", 1234)),
    ("health localhost:1234 {\n  lameduck 4s\n }", "health localhost:1234 (lameduck 4s)", ("localhost", 1234)),
    ("health [::1]:8080", "health [::1]:8080", ("::1", 8080)),
    ("health 127.0.0.1:8080 {\n  lameduck 0s\n }", "health 127.0.0.1:8080", ("127.0.0.1", 8080)),
    ("ready", "ready :8181 (monitor until-ready)", ("", 8181)),
    ("ready localhost:1234", "ready localhost:1234 (monitor until-ready)", ("localhost", 1234)),
    ("ready {\n  monitor until-ready\n }", "ready :8181 (monitor until-ready)", ("", 8181)),
    ("ready localhost:1234 {\n  monitor continuously\n }", "ready localhost:1234 (monitor continuously)",
     ("localhost", 1234)),
]


# health and ready lines refused, and what the error says.
REFUSED = [
    ("health bla", "Corefile:2: plugin/health: address bla: missing port in address"),
    ("health [::1]", "Corefile:2: plugin/health: address [::1]: missing port in address"),
    ("health ::1:8080", "Corefile:2: plugin/health: address ::1:8080: too many colons in address"),
    ("health [::1]x:80", "Corefile:2: plugin/health: address [::1]x:80: expected HOST:PORT or [IPv6]:PORT"),
    ("health [localhost]:80", "Corefile:2: plugin/health: address [localhost]:80: expected an IPv6 address"),
    ("health bla:a", "Corefile:2: plugin/health: address bla:a: invalid port 'a': expected a number"),
    ("health :65536", "Corefile:2: plugin/health: address :65536: invalid port '65536'"),
    ("health bla bla", "Corefile:2: plugin/health: unexpected argument 'bla': expected at most 1"),
    ("health localhost:1234 {\n  lameduck a\n }", "Corefile:3: plugin/health: invalid duration 'a'"),
    ("health {\n  lameduck\n }", "Corefile:3: plugin/health: expected at least 1 argument(s), got 0"),
    ("health {\n  lameduck 1s 2s\n }", "Corefile:3: plugin/health: unexpected argument '2s': expected at most 1"),
    ("health localhost:1234 {\n  lamedudk 4\n }", "Corefile:3: plugin/health: unknown property 'lamedudk'"),
    ("health {\n  lameduck 1s {\n   x\n  }\n }", "Corefile:4: plugin/health: unknown option 'x'"),
    ("ready bla", "Corefile:2: plugin/ready: address bla: missing port in address"),
    ("ready localhost:1234 b", "Corefile:2: plugin/ready: unexpected argument 'b': expected at most 1"),
    ("ready localhost:1234 {\n  monitor 404\n }", "Corefile:3: plugin/ready: monitor type '404' not supported"),
    ("ready {\n  monitor\n }", "Corefile:3: plugin/ready: expected at least 1 argument(s), got 0"),
    ("ready {\n  monitro continuously\n }", "Corefile:3: plugin/ready: unknown property 'monitro'"),
    ("ready\n ready :8182", "Corefile:3: plugin/ready: this plugin can only be used once per server block"),
]


@one_test_per_row("good", LISTENERS, lambda row: row[0])
@one_test_per_row("bad", REFUSED, lambda row: row[1].partition(": ")[2])
class ParseTests(unittest.SynchronousTestCase):
    def check_good(self, row):
        line, plan, address = row
        (config,) = build(f".:53 {{\n {line}\n whoami\n}}\n")
        self.assertEqual(config.plan, [plan, "whoami"], line)
        self.assertEqual([handler.name for handler in config.handlers], ["whoami"], line)
        self.assertEqual(list(config.shared.http_listeners), [address], line)

    def check_bad(self, row):
        line, message = row
        self.assertIn(message, refusal(f".:53 {{\n {line}\n}}\n"))

    def test_one_monitor_mode_per_listener(self):
        with self.assertRaises(CorefileError) as raised:
            build("a.example {\n ready\n}\nb.example {\n ready {\n  monitor continuously\n }\n}\n")
        self.assertIn("Corefile:5: plugin/ready: ready :8181 is monitored until-ready in another server block, "
                      "not continuously", str(raised.exception))

    def test_plan_runs_ready_then_health(self):
        path = write_corefile(self, ". {\n health {\n  lameduck 5s\n }\n whoami\n ready\n}\n")
        plan = build_daemon(path).plan()
        self.assertIn("    ready :8181 (monitor until-ready)\n    health :8080 (lameduck 5s)\n    whoami", plan)


class ReloadTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_a_reload_serves_the_new_ready_on_the_same_port(self):
        port = free_port()
        running = Running(self, f".:0 {{\n    bind 127.0.0.1\n    health 127.0.0.1:{port}\n}}\n")
        running.daemon.shared.readiness.append(("never", lambda: False))
        with open(running.daemon.path, "w") as corefile:
            corefile.write(f".:0 {{\n    bind 127.0.0.1\n    health 127.0.0.1:{port}\n    ready 127.0.0.1:{port}\n}}\n")
        reloaded = yield running.root.reload()
        health = yield get(port, "/health")
        ready = yield get(port, "/ready")
        self.assertEqual((reloaded, health[::2], ready[::2]), (True, (200, b"OK"), (200, b"OK")))
