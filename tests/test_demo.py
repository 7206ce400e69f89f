"""
The demo a new user runs first: C{kubernetai-demo} starts two clusters from YAML manifests and a
daemon for both, prints the dig lines to try, and each of them gets the answer it promises.
"""

import os
import signal
import subprocess
import sys

import dns.message
import dns.query
import dns.rcode
import dns.reversename
from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from kubernetai.apiserver.manifests import ManifestError, load_manifests
from kubernetai.demo import MANIFESTS, TRIES
from tests.test_daemon import free_port

DEMO = os.path.join(os.path.dirname(sys.executable), "kubernetai-demo")

# What each printed dig line must show: its answers' rdata as text, or its rcode when there are none.
ANSWERS = {
    "web.shop.svc.cluster.local": {"10.96.12.34"},
    "ledger.payments.svc.cluster.local": {"10.100.40.40"},
    "db.shop.svc.cluster.local": {"10.244.1.20", "10.244.2.21"},
    "db-0.db.shop.svc.cluster.local": {"10.244.1.20"},
    "SRV _https._tcp.web.shop.svc.cluster.local": {"0 100 443 web.shop.svc.cluster.local."},
    "-x 10.100.40.40": {"ledger.payments.svc.cluster.local."},
    "search.shop.svc.cluster.local": {"search.example.com."},
    "nothing.shop.svc.cluster.local": "NXDOMAIN",
}


def question(dig_arguments: str) -> dns.message.Message:
    """The query dig makes of C{[TYPE] NAME} or C{-x ADDRESS}."""
    words = dig_arguments.split()
    if words[0] == "-x":
        return dns.message.make_query(dns.reversename.from_address(words[1]), "PTR")
    rdtype, name = words if len(words) == 2 else ("A", words[0])
    return dns.message.make_query(name, rdtype)


def answer_of(reply: dns.message.Message):
    if not reply.answer:
        return dns.rcode.to_text(reply.rcode())
    return {rdata.to_text() for rrset in reply.answer for rdata in rrset}


class DemoTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_every_printed_dig_line_gets_its_answer(self):
        port = free_port()
        demo = subprocess.Popen([DEMO, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        self.addCleanup(demo.wait)
        self.addCleanup(demo.kill)
        printed = yield deferToThread(read_until, demo.stdout, "Ctrl-C stops the demo.")
        prefix = f"dig @127.0.0.1 -p {port} "
        dig_lines = [line.strip().split("  #")[0].strip() for line in printed if line.strip().startswith("dig ")]
        self.assertEqual(dig_lines, [f"{prefix}{entry.dig}" for entry in TRIES])
        self.assertEqual(set(ANSWERS), {entry.dig for entry in TRIES})
        for entry in TRIES:
            for over_tcp in (False, True):
                ask = dns.query.tcp if over_tcp else dns.query.udp
                reply = yield deferToThread(ask, question(entry.dig), "127.0.0.1", port=port, timeout=5)
                self.assertEqual(answer_of(reply), ANSWERS[entry.dig], (entry.dig, over_tcp))
        demo.send_signal(signal.SIGTERM)
        status = yield deferToThread(demo.wait, 30)
        self.assertEqual(status, 0, demo.stderr.read())

    @defer.inlineCallbacks
    def test_a_bad_manifest_is_named_and_the_demo_exits_1(self):
        bad = self.mktemp()
        with open(bad, "w") as manifest:
            manifest.write("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n")
        result = yield deferToThread(subprocess.run, [DEMO, "--port", str(free_port()), "--west", bad],
                                     capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"kubernetai-demo: {bad}: Deployment web: kind not served here", result.stderr)
        self.assertNotIn("Traceback", result.stderr)


def read_until(stream, last_line: str) -> list[str]:
    lines = []
    for line in stream:
        lines.append(line)
        if line.strip() == last_line:
            return lines
    raise AssertionError("the demo ended before it listened:\n" + "".join(lines))


class ManifestTests(unittest.SynchronousTestCase):
    def test_shipped_manifests_hold_both_clusters(self):
        kinds = {name: sorted({obj["kind"] for obj in load_manifests(os.path.join(MANIFESTS, f"{name}.yaml"))})
                 for name in ("east", "west")}
        self.assertEqual(kinds, {"east": ["EndpointSlice", "Namespace", "Service"],
                                 "west": ["EndpointSlice", "Namespace", "Service"]})

    def test_documents_and_lists_are_flattened_in_order(self):
        path = self.mktemp()
        with open(path, "w") as manifest:
            manifest.write("kind: Namespace\nmetadata: {name: a}\n---\n"
                           "kind: List\nitems:\n- kind: Namespace\n  metadata: {name: b}\n"
                           "- kind: Service\n  metadata: {name: c, namespace: b}\n")
        self.assertEqual([obj["metadata"]["name"] for obj in load_manifests(path)], ["a", "b", "c"])

    def test_errors_name_the_file(self):
        cases = [
            ("kind: Service\nmetadata: {}\n", "a Service without metadata.name"),
            ("- just\n- a list\n", "expected an object, got ['just', 'a list']"),
            ("kind: [unclosed\n", "not YAML"),
        ]
        for text, message in cases:
            path = self.mktemp()
            with open(path, "w") as manifest:
                manifest.write(text)
            with self.assertRaises(ManifestError) as raised:
                load_manifests(path)
            self.assertIn(f"{path}: {message}", str(raised.exception))
