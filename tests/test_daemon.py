"""
The daemon as a user runs it: C{twistd kubernetai} as a subprocess, its
--help and --validate, a bad Corefile refused, and a running daemon answering.
"""

import os
import socket
import subprocess
import sys

import dns.exception
import dns.flags
import dns.message
import dns.query
from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from kubernetai.systemd import notify
from tests.support import FakeUpstream, capture_logs, write_corefile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


def twistd(*args, cwd=None, timeout=60):
    """Run twistd with C{args} from C{cwd}; a Deferred firing with the CompletedProcess."""
    command = [TWISTD, *args]
    return deferToThread(subprocess.run, command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    """A port that is free for both UDP and TCP on 127.0.0.1 right now."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


class CommandLineTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_help_from_any_directory(self):
        elsewhere = self.mktemp()
        os.makedirs(elsewhere)
        result = yield twistd("kubernetai", "--help", cwd=elsewhere)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("--validate", result.stdout)
        self.assertIn("--conf=", result.stdout)

    @defer.inlineCallbacks
    def test_validate_corefile_example(self):
        result = yield twistd("-n", "kubernetai", "-c", os.path.join(REPO, "Corefile.example"), "--validate")
        self.assertEqual(result.returncode, 0, result.stderr)
        plan = result.stdout
        self.assertIn("server block whoami.example:1053", plan)
        self.assertIn("listens dns://.:1053 udp+tcp on 127.0.0.1", plan)
        errors_at, log_at, forward_at = (plan.index("    errors"), plan.index("    log\n    forward"),
                                         plan.index("    forward . -> "))
        self.assertLess(errors_at, log_at)
        self.assertLess(log_at, forward_at)
        self.assertTrue(plan.rstrip().endswith("Corefile OK"))

    @defer.inlineCallbacks
    def test_validate_prints_stanzas_in_corefile_order(self):
        path = write_corefile(self, """\
.:5300 {
    forward . 127.0.0.1
    kubernetai assemblage.local {
        endpoint http://127.0.0.1:1
    }
    errors
    kubernetai cluster.local {
        endpoint https://127.0.0.1:2
        fallthrough
    }
}
""")
        result = yield twistd("-n", "kubernetai", "-c", path, "--validate")
        self.assertEqual(result.returncode, 0, result.stderr)
        steps = [line.strip() for line in result.stdout.splitlines() if line.startswith("    ")]
        self.assertEqual(steps[0], "errors")
        self.assertEqual(steps[1:3], ["kubernetai #1 assemblage.local. (http://127.0.0.1:1)",
                                      "kubernetai #2 cluster.local. (https://127.0.0.1:2) fallthrough"])
        self.assertTrue(steps[3].startswith("forward . -> 127.0.0.1:53"))

    @defer.inlineCallbacks
    def test_dns_port_sets_the_default_port(self):
        path = write_corefile(self, ".:5300 {\n    whoami\n}\nexample.org {\n    whoami\n}\n")
        result = yield twistd("-n", "kubernetai", "-c", path, "--dns.port", "1153", "--validate")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("listens dns://.:5300 ", result.stdout)
        self.assertIn("listens dns://example.org.:1153 ", result.stdout)

    @defer.inlineCallbacks
    def test_bad_corefile_names_file_and_line(self):
        path = write_corefile(self, ".:5300 {\n    errors\n    bogus_plugin on\n}\n")
        result = yield twistd("-n", "kubernetai", "-c", path, "--validate")
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"{path}:3: unknown directive 'bogus_plugin'", result.stderr)
        self.assertNotIn("Traceback", result.stderr)

    @defer.inlineCallbacks
    def test_bad_corefile_refuses_to_start(self):
        path = write_corefile(self, ".:5300 {\n    forward . 127.0.0.1 {\n        policy fastest\n    }\n}\n")
        result = yield twistd("-n", "kubernetai", "-c", path)
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"{path}:3: plugin/forward: unknown policy 'fastest'", result.stderr)

    @defer.inlineCallbacks
    def test_missing_corefile(self):
        elsewhere = self.mktemp()
        os.makedirs(elsewhere)
        result = yield twistd("-n", "kubernetai", "--validate", cwd=elsewhere)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr,
            "Corefile: no such Corefile: name the one to load with -c/--conf FILE (the default is ./Corefile)\n",
        )

    @defer.inlineCallbacks
    def test_version_is_kubernetai_s(self):
        result = yield twistd("kubernetai", "--version")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"^kubernetai \d+\.\d+\.\d+ \(Twisted \S+, Python \S+\)\n$")


class RunningDaemonTests(unittest.TestCase):
    """The example's two kinds of answer from a real twistd process."""

    @defer.inlineCallbacks
    def test_whoami_and_forwarded_name(self):
        upstream = FakeUpstream({("www.example.org.", "A"): ["192.0.2.1"]})
        upstream_port = upstream.start(self)
        port = free_port()
        with open(os.path.join(REPO, "Corefile.example")) as example:
            text = example.read().replace("1053", str(port))
        path = write_corefile(self, text.replace("/etc/resolv.conf", f"127.0.0.1:{upstream_port}"))
        notifications = self.systemd_notify_socket()
        environment = dict(os.environ, NOTIFY_SOCKET=notifications.getsockname(), WATCHDOG_USEC="200000")
        process = subprocess.Popen([TWISTD, "-n", "--pidfile=", "kubernetai", "-c", path],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)
        self.addCleanup(process.wait)
        self.addCleanup(process.terminate)
        ready = yield deferToThread(notifications.recv, 4096)
        self.assertEqual(ready, b"READY=1")
        watchdog = yield deferToThread(notifications.recv, 4096)
        self.assertEqual(watchdog, b"WATCHDOG=1", "pinged at half of WatchdogSec")
        whoami = yield deferToThread(query_until_answered, port, "whoami.example")
        self.assertEqual(whoami.additional[0].name.to_text(), "whoami.example.")
        self.assertTrue(whoami.flags & dns.flags.AA)
        forwarded = yield deferToThread(query_until_answered, port, "www.example.org")
        self.assertEqual([item.address for item in forwarded.answer[0]], ["192.0.2.1"])
        process.terminate()
        stopping = yield deferToThread(self.next_other_than_watchdog, notifications)
        self.assertEqual(stopping, b"STOPPING=1")

    @staticmethod
    def next_other_than_watchdog(notifications) -> bytes:
        while True:
            message = notifications.recv(4096)
            if message != b"WATCHDOG=1":
                return message

    def systemd_notify_socket(self) -> socket.socket:
        """A datagram socket standing in for systemd's notification socket."""
        directory = self.mktemp()
        os.makedirs(directory)
        notifications = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notifications.bind(os.path.join(directory, "notify"))
        notifications.settimeout(30)
        self.addCleanup(notifications.close)
        return notifications


class NotifyTests(unittest.TestCase):
    """sd_notify never holds the reactor: a notification socket nobody reads, or none at all."""

    def setUp(self):
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "notify")
        self.unread = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.unread.bind(self.path)
        self.addCleanup(self.unread.close)

    @defer.inlineCallbacks
    def test_a_full_socket_drops_the_notification(self):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as filler:
            filler.setblocking(False)
            filler.connect(self.path)
            try:
                while True:
                    filler.send(b"WATCHDOG=1")
            except BlockingIOError:
                pass
        logs = capture_logs(self)
        sending = deferToThread(notify, "WATCHDOG=1", {"NOTIFY_SOCKET": self.path})
        sending.addTimeout(10, reactor)
        self.assertTrue((yield sending))
        self.assertTrue(any("notification socket is full" in line for line in logs), logs)

    def test_no_socket_at_the_path_is_logged(self):
        logs = capture_logs(self)
        self.assertTrue(notify("READY=1", {"NOTIFY_SOCKET": self.path + ".gone"}))
        self.assertTrue(any("cannot notify systemd" in line for line in logs), logs)


def query_until_answered(port: int, name: str, attempts: int = 100) -> dns.message.Message:
    """Ask until the daemon has started and answers."""
    for _ in range(attempts):
        try:
            return dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=0.2)
        except dns.exception.Timeout:
            continue
    raise AssertionError(f"no answer for {name} on port {port}")
