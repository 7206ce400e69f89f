"""
Workers: C{twistd kubernetai --workers 2} as a user runs it, against the
test API server: every worker answers on the one port, the supervisor's
/health, /ready and merged /metrics speak for all of them, a killed worker is
started again, SIGHUP reloads every worker, SIGTERM stops every process; and
the supervisor's pure parts (log relay, metrics merge, readiness, back-off).
"""

import hashlib
import json
import os
import signal
import socket
import subprocess

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.logger import Logger, LogLevel, formatEvent
from twisted.trial import unittest

from kubernetai.corefile import CorefileError
from kubernetai.daemon import build_daemon
from kubernetai.metrics import counter, gauge
from kubernetai.worker import event_line
from kubernetai.supervisor import (
    RESTART_DELAY_FIRST,
    RESTART_DELAY_MAX,
    Lines,
    check_shareable,
    relayed_event,
    restart_delay,
    worker_count,
)
from kubernetai.metrics import Families
from kubernetai.supervisorhttp import merged_families, not_ready_names
from kubernetai.apiserver.server import ApiServer
from tests.support import query, wait_until, write_corefile
from tests.test_daemon import TWISTD, RunningDaemonTests, free_port, twistd
from tests.test_health_ready import get
from tests.test_prometheus import scrape

WORKERS = 2
# Enough client sockets that all of them landing on one worker (odds 2 ** -(QUERIES - 1)) never happens.
QUERIES = 40


def corefile(dns_port: int, http_port: int, api_url: str, hosts: str = "192.0.2.7 seven.example",
             stanza_options: str = "") -> str:
    return f""".:{dns_port} {{
    bind 127.0.0.1
    health 127.0.0.1:{http_port}
    ready 127.0.0.1:{http_port}
    prometheus 127.0.0.1:{http_port}
    explain 127.0.0.1:{http_port}
    hosts {{
        {hosts}
        fallthrough
    }}
    kubernetai cluster.local {{
        endpoint {api_url}
        {stanza_options}
    }}
    whoami
}}
"""


class Supervised:
    """A running C{twistd kubernetai --workers 2} (or C{workers}): its process, ports, Corefile and systemd
    notifications."""

    def __init__(self, testcase: unittest.TestCase, api: ApiServer, dns_port: int | None = None,
                 workers: int = WORKERS, stanza_options: str = "", watchdog: bool = True) -> None:
        self.dns_port = self.http_port_number = dns_port or free_port()
        while self.http_port_number == self.dns_port:
            self.http_port_number = free_port()
        self.api = api
        self.path = write_corefile(testcase, corefile(self.dns_port, self.http_port_number, api.url,
                                                      stanza_options=stanza_options))
        self.notifications = RunningDaemonTests.systemd_notify_socket(testcase)
        # WATCHDOG=1 every second: a test that reads no notification for 10 s (the socket's queue) blocks the daemon.
        watching = {"WATCHDOG_USEC": "2000000"} if watchdog else {}
        environment = dict(os.environ, NOTIFY_SOCKET=self.notifications.getsockname(), **watching)
        self.log_path = testcase.mktemp()
        with open(self.log_path, "w") as output:
            self.process = subprocess.Popen(
                [TWISTD, "-n", "--pidfile=", "kubernetai", "-c", self.path, "--workers", str(workers)],
                stdout=output, stderr=subprocess.STDOUT, env=environment)
        testcase.addCleanup(self.stop)

    def http_port(self) -> int:
        return self.http_port_number

    def next_notification(self):
        """The next systemd notification other than WATCHDOG=1, in a thread."""
        return deferToThread(RunningDaemonTests.next_other_than_watchdog, self.notifications)

    def log(self) -> str:
        with open(self.log_path) as output:
            return output.read()

    @defer.inlineCallbacks
    def verbose_ready(self):
        """(status code, document) of the supervisor's /ready?verbose."""
        code, _, body = yield get(self.http_port_number, "/ready?verbose")
        return code, json.loads(body)

    @defer.inlineCallbacks
    def pids(self):
        """Every worker's pid, in worker order, as /ready?verbose shows them."""
        _, ready = yield self.verbose_ready()
        return [worker["pid"] for worker in ready["workers"]]

    def reload(self, text: str) -> None:
        with open(self.path, "w") as corefile_text:
            corefile_text.write(text)
        self.process.send_signal(signal.SIGHUP)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
        return self.exited()

    def exited(self):
        """The supervisor's exit status, once it has exited, in a thread."""
        return deferToThread(self.process.wait, 60)


def per_worker(samples: dict, metric: str) -> dict[str, float]:
    """{worker: sum of C{metric}'s samples labelled with it}."""
    sums: dict[str, float] = {}
    for (name, labels), value in samples.items():
        worker = dict(labels).get("worker")
        if name == metric and worker is not None:
            sums[worker] = sums.get(worker, 0) + value
    return sums


def running(pid: int) -> bool:
    """Whether process C{pid} runs (a zombie, whose parent has not reaped it, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def ask_from_many_sockets(port: int, name: str):
    """QUERIES queries for C{name} A, each from a socket of its own; a Deferred firing with the answers."""
    return defer.gatherResults([query(port, name, "A") for _ in range(QUERIES)])


def addresses(answers) -> set:
    return {tuple(item.address for rrset in answer.answer for item in rrset) for answer in answers}


class WorkersTestCase(unittest.TestCase):
    """Tests of workers against an API server with the service web.default (10.0.0.1)."""

    # Whether the daemon pings systemd's watchdog (see L{Supervised}).
    watchdog = True

    def setUp(self):
        self.api = ApiServer()
        self.api.start()
        self.addCleanup(self.api.stop)
        self.api.namespace("default")
        self.api.service("default", "web", cluster_ips=["10.0.0.1"], ports=[{"name": "http", "port": 80}])

    @defer.inlineCallbacks
    def start(self, workers: int = WORKERS, stanza_options: str = "") -> Supervised:
        """Start the supervisor (one worker: the daemon alone) and wait until it tells systemd every worker listens."""
        supervised = Supervised(self, self.api, workers=workers, stanza_options=stanza_options,
                                watchdog=self.watchdog)
        ready = yield supervised.next_notification()
        self.assertEqual(ready, b"READY=1", supervised.log())
        return supervised


class RunningWorkersTests(WorkersTestCase):

    @defer.inlineCallbacks
    def test_every_worker_answers_and_is_counted(self):
        supervised = yield self.start()
        code, ready = yield supervised.verbose_ready()
        self.assertEqual((code, ready["status"]), (200, "ok"))
        self.assertEqual([worker["listening"] for worker in ready["workers"]], [True] * WORKERS)
        self.assertEqual([worker["ready"]["stanzas"][0]["synced"] for worker in ready["workers"]], [True] * WORKERS)
        plain_ready = yield get(supervised.http_port(), "/ready")
        health = yield get(supervised.http_port(), "/health")
        self.assertEqual((plain_ready[0], plain_ready[2], health[0], health[2]), (200, b"OK", 200, b"OK"))
        code, content_type, explained = yield get(supervised.http_port(),
                                                  "/explain?name=web.default.svc.cluster.local&format=json")
        self.assertEqual((code, content_type), (200, b"application/json"))
        self.assertEqual(json.loads(explained)["answer"]["answers"], ["web.default.svc.cluster.local. 5 IN A 10.0.0.1"])
        services = yield ask_from_many_sockets(supervised.dns_port, "web.default.svc.cluster.local")
        self.assertEqual(addresses(services), {("10.0.0.1",)})
        hosts = yield ask_from_many_sockets(supervised.dns_port, "seven.example")
        self.assertEqual(addresses(hosts), {("192.0.2.7",)})
        samples = yield scrape(supervised)
        requests = per_worker(samples, "coredns_dns_requests_total")
        self.assertEqual(sorted(requests), [str(index) for index in range(WORKERS)])
        self.assertTrue(all(count > 0 for count in requests.values()), requests)
        self.assertEqual(sum(requests.values()), 2 * QUERIES)
        self.assertEqual(samples[("kubernetai_workers", ())], WORKERS)
        self.assertIn(("process_cpu_seconds_total", ()), samples, "the supervisor's own process metrics")
        self.assertIn(("process_cpu_seconds_total", (("worker", "1"),)), samples)
        self.assertNotIn("Starting factory", supervised.log(), "asking workers logs no line per connection")

    @defer.inlineCallbacks
    def test_a_killed_worker_is_started_again(self):
        supervised = yield self.start()
        first, second = yield supervised.pids()
        os.kill(first, signal.SIGKILL)

        @defer.inlineCallbacks
        def noticed():
            pids = yield supervised.pids()
            return pids[0] != first

        yield wait_until(noticed, "the supervisor sees the worker gone", timeout=30)
        answers = yield ask_from_many_sockets(supervised.dns_port, "web.default.svc.cluster.local")
        self.assertEqual(addresses(answers), {("10.0.0.1",)}, "the port answers all along")

        @defer.inlineCallbacks
        def ready_again():
            code, ready = yield supervised.verbose_ready()
            return code == 200 and all(worker["pid"] for worker in ready["workers"])

        yield wait_until(ready_again, "ready again with a new worker 0", timeout=30)
        pids = yield supervised.pids()
        self.assertNotIn(pids[0], (first, None))
        self.assertEqual(pids[1], second)
        samples = yield scrape(supervised)
        self.assertEqual(samples[("kubernetai_worker_restarts_total", (("worker", "0"),))], 1)
        self.assertEqual(samples[("kubernetai_worker_restarts_total", (("worker", "1"),))], 0)
        self.assertIn(f"worker 0 (pid {first}) ended (signal 9): starting it again", supervised.log())
        answers = yield ask_from_many_sockets(supervised.dns_port, "seven.example")
        self.assertEqual(addresses(answers), {("192.0.2.7",)})

    @defer.inlineCallbacks
    def test_sighup_reloads_every_worker(self):
        supervised = yield self.start()
        text = corefile(supervised.dns_port, supervised.http_port(), self.api.url, "192.0.2.8 eight.example")
        supervised.reload(text)
        checksum = hashlib.sha512(text.encode()).hexdigest()

        @defer.inlineCallbacks
        def every_worker_runs_it():
            samples = yield scrape(supervised)
            return per_worker(samples, "coredns_reload_version_info") == {
                str(index): 1 for index in range(WORKERS)
            } and all(("value", checksum) in labels for (name, labels) in samples
                      if name == "coredns_reload_version_info")

        yield wait_until(every_worker_runs_it, "both workers report the new Corefile's SHA512", timeout=30)
        answers = yield ask_from_many_sockets(supervised.dns_port, "eight.example")
        self.assertEqual(addresses(answers), {("192.0.2.8",)})
        pids = yield supervised.pids()
        self.assertNotIn(None, pids)
        self.assertIn("SIGHUP: every worker reloads the Corefile", supervised.log())

    @defer.inlineCallbacks
    def test_a_port_in_use_stops_everything(self):
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        supervised = Supervised(self, self.api, dns_port=taken.getsockname()[1])
        status = yield supervised.exited()
        self.assertEqual(status, 1)
        self.assertIn("ended before it listened (", supervised.log())
        self.assertIn("Address already in use", supervised.log())

    @defer.inlineCallbacks
    def test_workers_stop_when_the_supervisor_dies(self):
        supervised = yield self.start()
        pids = yield supervised.pids()
        supervised.process.kill()
        yield supervised.exited()
        yield wait_until(lambda: all(not running(pid) for pid in pids), "every worker gone", timeout=30)

    @defer.inlineCallbacks
    def test_sigterm_stops_every_process(self):
        supervised = yield self.start()
        pids = yield supervised.pids()
        supervised.process.terminate()
        stopping = yield supervised.next_notification()
        self.assertEqual(stopping, b"STOPPING=1")
        status = yield supervised.exited()
        self.assertEqual(status, -signal.SIGTERM, "twistd ends by the signal it was stopped with, as one process does")
        self.assertEqual([running(pid) for pid in pids], [False] * WORKERS)
        self.assertEqual(supervised.log().count("stopped: exit status 0"), WORKERS)


class CommandLineTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_validate_names_the_workers(self):
        path = write_corefile(self, ".:5300 {\n    whoami\n}\n")
        result = yield twistd("-n", "kubernetai", "-c", path, "--workers", "3", "--validate")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("\n3 workers: each serves every DNS port (SO_REUSEPORT)", result.stdout)
        self.assertTrue(result.stdout.endswith("Corefile OK\n"))

    @defer.inlineCallbacks
    def test_one_worker_is_one_process(self):
        path = write_corefile(self, ".:5300 {\n    whoami\n}\n")
        result = yield twistd("-n", "kubernetai", "-c", path, "--workers", "1", "--validate")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn(" workers: ", result.stdout)

    @defer.inlineCallbacks
    def test_port_0_refused(self):
        path = write_corefile(self, ".:5300 {\n    whoami\n}\n.:0 {\n    whoami\n}\n")
        result = yield twistd("-n", "kubernetai", "-c", path, "--workers", "2", "--validate")
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"{path}:4: port 0 cannot be shared by workers", result.stderr)

    @defer.inlineCallbacks
    def test_bad_count_refused(self):
        result = yield twistd("-n", "kubernetai", "--workers", "0", "--validate")
        self.assertEqual(result.returncode, 1)
        self.assertIn("0 workers: at least 1", result.stdout)


class SupervisorPartsTests(unittest.SynchronousTestCase):
    def test_worker_count(self):
        self.assertEqual(worker_count("3"), 3)
        self.assertEqual(worker_count("auto"), len(os.sched_getaffinity(0)))
        self.assertRaises(ValueError, worker_count, "0")
        self.assertRaises(ValueError, worker_count, "many")

    def test_restart_delay_doubles_up_to_its_cap(self):
        delays = [restart_delay(crashes) for crashes in range(1, 12)]
        self.assertEqual(delays[:3], [RESTART_DELAY_FIRST, 2 * RESTART_DELAY_FIRST, 4 * RESTART_DELAY_FIRST])
        self.assertEqual(delays[-1], RESTART_DELAY_MAX)

    def test_port_0_is_not_shareable(self):
        path = write_corefile(self, "example.org:5300 {\n    whoami\n}\n")
        check_shareable(build_daemon(path))
        zero = write_corefile(self, "example.org:0 {\n    whoami\n}\n")
        self.assertRaises(CorefileError, check_shareable, build_daemon(zero))

    def test_log_events_relayed_as_the_worker_logged_them(self):
        events = []
        Logger(namespace="kubernetai.plugins.reload", observer=events.append).warn("Restart failed: {why}", why="{x}")
        try:
            1 / 0
        except ZeroDivisionError:
            Logger(namespace="kubernetai.server", observer=events.append).failure("dropped a packet")
        warning, failure = (relayed_event(event_line(event), 1) for event in events)
        self.assertEqual(formatEvent(warning), "Restart failed: {x}")
        self.assertEqual((warning["log_level"], warning["log_namespace"]), (LogLevel.warn, "kubernetai.plugins.reload"))
        self.assertEqual(warning["log_system"], "kubernetai.plugins.reload#warn worker 1")
        self.assertEqual(warning["log_time"], events[0]["log_time"])
        self.assertEqual(failure["log_level"], LogLevel.critical)
        self.assertIn("ZeroDivisionError", formatEvent(failure))

    def test_other_output_relayed_as_text(self):
        event = relayed_event("Traceback (most recent call last):", 0, LogLevel.error)
        self.assertEqual((formatEvent(event), event["log_level"]), ("Traceback (most recent call last):", LogLevel.error))
        self.assertEqual(event["log_system"], "kubernetai.supervisor#error worker 0")

    def test_lines(self):
        lines = Lines()
        self.assertEqual(lines.feed(b'{"a": 1}\n{"b"'), ['{"a": 1}'])
        self.assertEqual(lines.feed(b': 2}\n\n'), ['{"b": 2}', ""])

    def test_not_ready_names(self):
        ready = (200, {"status": "ok", "not_ready": []})
        syncing = (503, {"status": "not ready", "not_ready": ["kubernetai cluster.local. (http://a)"]})
        stopping = (503, {"status": "shutting down", "not_ready": []})
        self.assertEqual(not_ready_names([ready, ready]), [])
        self.assertEqual(not_ready_names([syncing, syncing, ready]), ["kubernetai cluster.local. (http://a)"])
        self.assertEqual(not_ready_names([ready, None, stopping, (503, None)]), ["worker 1", "worker 2", "worker 3"])

    def test_metrics_merged_with_a_worker_label(self):
        pages = {index: generate_latest(Families([
            counter("coredns_dns_requests_total", "Requests.", ("zone",), [((".",), index + 1)]),
            gauge("kubernetai_stanza_synced", "Synced.", ("stanza",), [(("a",), 1)]),
        ])).decode() for index in range(2)}
        own = [gauge("kubernetai_workers", "Worker processes running.", (), [((), 2)])]
        text = generate_latest(Families(merged_families(pages | {2: "not { a page"}, own))).decode()
        self.assertEqual(text.count("# HELP coredns_dns_requests_total "), 1)
        self.assertEqual(text.count("# TYPE kubernetai_stanza_synced gauge"), 1)
        samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                   for family in text_string_to_metric_families(text) for sample in family.samples}
        self.assertEqual(samples[("coredns_dns_requests_total", (("worker", "0"), ("zone", ".")))], 1)
        self.assertEqual(samples[("coredns_dns_requests_total", (("worker", "1"), ("zone", ".")))], 2)
        self.assertEqual(samples[("kubernetai_workers", ())], 2)
        self.assertNotIn("2", {dict(labels).get("worker") for _, labels in samples})
