# -*- test-case-name: tests.e2e -*-
"""
What the end-to-end tests share: one real control plane for the whole run (started on first
use, stopped when the test process ends), a kubernetai daemon run as its users run it
(C{twistd -n kubernetai -c Corefile}, a subprocess), DNS questions over real UDP and TCP, the
admin's hand in the cluster, and waiting for a change to show, with the time it may take.

Without a kube-apiserver, etcd and openssl the tests skip with one line saying how to enable
them; under CI (C{CI=true}) they fail instead.
"""

from __future__ import annotations

import atexit
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
from kubernetes import client
from twisted.trial.unittest import SynchronousTestCase

from kubernetai.apiserver.resources import load_balancer
from tests.e2e.controlplane import ControlPlane, die_with_parent, end_process, missing
from tests.e2e.identities import Identities, admin_client
from tests.test_daemon import free_port

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
IN_CI = os.environ.get("CI") == "true"
_STARTED_WITHIN = 60.0
# The run's control plane, its identities, the test classes whose objects it holds, and how
# many e2e tests are still to run (counted as trial loads them).
_shared: dict = {}
_tests_left = [0]


def shared_control_plane() -> tuple[ControlPlane, Identities]:
    """The control plane of this test run and its identities, started on first call."""
    if "error" in _shared:
        raise RuntimeError(f"the control plane failed to start earlier: {_shared['error']}")
    if "plane" not in _shared:
        plane = ControlPlane()
        atexit.register(plane.stop)
        try:
            plane.start()
            _shared["identities"] = Identities.make(plane)
        except Exception as err:
            _shared["error"] = err
            raise
        _shared["plane"] = plane
    return _shared["plane"], _shared["identities"]


def eventually(check, within: float, what: str):
    """Call C{check} until it returns something true, at most C{within} seconds; that value.

    Fails with C{what} and the last value seen if the time runs out."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s (last: {value!r})")
        time.sleep(0.05)


def ask(port: int, name: str, rdtype: str = "A", tcp: bool = False, timeout: float = 2.0,
        tries: int = 3) -> dns.message.Message:
    """The daemon's reply to C{name} C{rdtype}; over UDP asked again after C{timeout}, as a
    resolver does, up to C{tries} times in all (a loaded CI machine may lose or delay one)."""
    message = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(message, "127.0.0.1", port=port, timeout=timeout)
    for _ in range(tries - 1):
        try:
            return dns.query.udp(message, "127.0.0.1", port=port, timeout=timeout)
        except dns.exception.Timeout:
            continue
    return dns.query.udp(message, "127.0.0.1", port=port, timeout=timeout)


def records(reply: dns.message.Message, section: str = "answer") -> list[str]:
    """The records of a section as sorted zone-file lines without TTLs: C{NAME TYPE DATA}."""
    return sorted(f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {item.to_text()}"
                  for rrset in getattr(reply, section) for item in rrset)


def rcode(reply: dns.message.Message) -> str:
    return dns.rcode.to_text(reply.rcode())


def wrong_answers(daemon: Daemon, rows, tcp: bool) -> list[str]:
    """What the daemon answers otherwise than C{rows} say: (question, type, rcode, answer records as
    L{records} writes them, or None to compare the rcode alone)."""
    wrong = []
    for question, rdtype, expected_rcode, expected in rows:
        reply = daemon.ask(question, rdtype, tcp=tcp)
        got = (rcode(reply), records(reply))
        if expected is None:
            got, expected = got[0], expected_rcode
        else:
            expected = (expected_rcode, expected)
        if got != expected:
            wrong.append(f"{question} {rdtype}: {got} instead of {expected}")
    return wrong


class Daemon:
    """kubernetai as a subprocess on a free port of 127.0.0.1, serving one server block of
    C{body} (plugins and stanzas) with C{ready} and C{prometheus} on a second port."""

    def __init__(self, testcase: SynchronousTestCase, body: str) -> None:
        self.port = free_port()
        self.http_port = free_port()
        directory = testcase.mktemp()
        os.makedirs(directory)
        self.corefile = os.path.join(directory, "Corefile")
        self.log_path = os.path.join(directory, "kubernetai.log")
        with open(self.corefile, "w") as corefile:
            corefile.write(f".:{self.port} {{\n    bind 127.0.0.1\n    errors\n"
                           f"    ready 127.0.0.1:{self.http_port} {{\n        monitor continuously\n    }}\n"
                           f"    prometheus 127.0.0.1:{self.http_port}\n{body}\n}}\n")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen([TWISTD, "-n", "--pidfile=", "kubernetai", "-c", self.corefile],
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            preexec_fn=die_with_parent)
        testcase.addCleanup(self.stop)

    def wait_ready(self) -> None:
        """Return once C{/ready} says every stanza has synced."""
        eventually(lambda: self.ready()[0] == 200 or self.exited(), _STARTED_WITHIN, "the daemon ready")
        if self.exited():
            raise AssertionError(f"the daemon exited:\n{self.log()[-3000:]}")

    def wait_answering(self, name: str) -> None:
        """Return once C{name} gets an answer (some stanza may never sync)."""
        eventually(lambda: self._answers(name) or self.exited(), _STARTED_WITHIN, f"an answer for {name}")
        if self.exited():
            raise AssertionError(f"the daemon exited:\n{self.log()[-3000:]}")

    def ask(self, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
        return ask(self.port, name, rdtype, tcp)

    def ready(self) -> tuple[int, str]:
        """C{/ready}'s status code and text."""
        return self.http("/ready")

    def metrics(self) -> str:
        return self.http("/metrics")[1]

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of C{name} with these label values."""
        total = 0.0
        for line in self.metrics().splitlines():
            match = re.match(rf"{re.escape(name)}\{{(.*)\}} (\S+)$", line)
            if match and all(_label(match[1], key) == value for key, value in labels.items()):
                total += float(match[2])
        return total

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()
        except OSError as err:
            return 0, str(err)

    def log(self) -> str:
        with open(self.log_path, errors="replace") as log:
            return log.read()

    def exited(self) -> bool:
        return self.process.poll() is not None

    def stop(self) -> None:
        end_process(self.process)

    def _answers(self, name: str) -> bool:
        try:
            return rcode(self.ask(name)) == "NOERROR"
        except dns.exception.Timeout:
            return False


def _label(labels: str, key: str) -> str | None:
    match = re.search(rf'(?:^|,){re.escape(key)}="((?:[^"\\]|\\.)*)"', labels)
    return match[1] if match else None


def stanza(zone: str, kubeconfig: str, *options: str) -> str:
    """A C{kubernetai} stanza for C{zone} through C{kubeconfig}, with more option lines."""
    lines = [f"        kubeconfig {kubeconfig}", *(f"        {option}" for option in options)]
    return f"    kubernetai {zone} {{\n" + "\n".join(lines) + "\n    }"


class Admin:
    """The admin's hand in the cluster: objects made, changed and deleted as a user would."""

    def __init__(self, identities: Identities) -> None:
        self.api = admin_client(identities.admin)
        self.core = client.CoreV1Api(self.api)
        self.discovery = client.DiscoveryV1Api(self.api)

    def namespace(self, name: str) -> None:
        self.core.create_namespace({"metadata": {"name": name}})

    def service(self, service: dict) -> dict:
        return self.core.create_namespaced_service(service["metadata"]["namespace"], _creatable(service))

    def endpoint_slice(self, endpoint_slice: dict) -> dict:
        return self.discovery.create_namespaced_endpoint_slice(endpoint_slice["metadata"]["namespace"],
                                                               _creatable(endpoint_slice))

    def replace_endpoints(self, namespace: str, name: str, endpoints: list[dict]) -> None:
        """Patch a slice's endpoints, as the EndpointSlice controller changes them."""
        self.discovery.patch_namespaced_endpoint_slice(name, namespace, {"endpoints": endpoints})

    def pod(self, pod: dict) -> None:
        """Create the pod, then set its IPs through the status subresource, as a kubelet does."""
        metadata = pod["metadata"]
        self.core.create_namespaced_pod(metadata["namespace"], _creatable(pod))
        self.core.patch_namespaced_pod_status(metadata["name"], metadata["namespace"], {"status": pod["status"]})

    def load_balancer(self, namespace: str, name: str, ingress: list[str]) -> None:
        """Set a Service's LoadBalancer ingress (IPs and host names) through the status subresource, as a
        load-balancer controller does."""
        self.core.patch_namespaced_service_status(name, namespace, {"status": load_balancer(ingress)})

    def delete(self, kind: str, namespace: str, name: str) -> None:
        functions = {"services": self.core.delete_namespaced_service, "pods": self.core.delete_namespaced_pod,
                     "endpointslices": self.discovery.delete_namespaced_endpoint_slice}
        functions[kind](name, namespace, grace_period_seconds=0)


def _creatable(obj: dict) -> dict:
    """An object as a user posts it: without the status the server sets itself."""
    return {key: value for key, value in obj.items() if key != "status"}


def one_test_done() -> None:
    """Stop the control plane once the last e2e test of the run is done, not when the whole suite is."""
    _tests_left[0] -= 1
    if _tests_left[0] == 0 and "plane" in _shared:
        _shared.pop("plane").stop()
        _shared.clear()


class E2ETestCase(SynchronousTestCase):
    """A test against the shared real control plane, as its admin; L{make_objects} runs once per class."""

    skip = None if IN_CI else missing()

    def __init__(self, methodName: str = "runTest") -> None:
        super().__init__(methodName)
        _tests_left[0] += 1

    def setUp(self) -> None:
        self.addCleanup(one_test_done)
        reason = missing()
        if reason:
            self.fail(reason)
        self.plane, self.identities = shared_control_plane()
        self.admin = Admin(self.identities)
        if type(self) not in _shared.setdefault("made", set()):
            self.make_objects()
            _shared["made"].add(type(self))

    def make_objects(self) -> None:
        """Make the objects every test of the class needs, with C{self.admin}."""
