"""
Changes made by the admin on a real kube-apiserver, seen by a running daemon within 2 s:
a Service made and deleted, an EndpointSlice's endpoints edited, a slice added and deleted,
a pod's IP set through the status subresource and the pod deleted.
"""

from __future__ import annotations

from kubernetai.apiserver.resources import make_endpoint_slice, make_pod, make_service
from tests.e2e.support import Daemon, E2ETestCase, eventually, rcode, records, stanza

NAMESPACE = "changes"
HTTP = {"name": "http", "port": 80, "protocol": "TCP"}
SEEN_WITHIN = 2.0


def fqdn(service: str, kind: str = "svc") -> str:
    return f"{service}.{NAMESPACE}.{kind}.cluster.local."


class ChangeTests(E2ETestCase):
    def make_objects(self) -> None:
        self.admin.namespace(NAMESPACE)

    def setUp(self) -> None:
        super().setUp()
        self.daemon = Daemon(self, stanza("cluster.local", self.identities.cert, "pods verified"))
        self.daemon.wait_ready()

    def answers(self, question: str, rdtype: str = "A"):
        """A check for L{eventually}: the answer records, or the rcode when there are none."""
        reply = self.daemon.ask(question, rdtype)
        return records(reply) or rcode(reply)

    def seen(self, question: str, expected, rdtype: str = "A", what: str = "") -> None:
        eventually(lambda: self.answers(question, rdtype) == expected, SEEN_WITHIN, what or f"{question} {expected}")

    def test_service_made_and_deleted(self):
        self.assertEqual(self.answers(fqdn("made")), "NXDOMAIN")
        self.admin.service(make_service(NAMESPACE, "made", ["10.0.2.1"], [HTTP]))
        self.seen(fqdn("made"), [f"{fqdn('made')} A 10.0.2.1"])
        self.admin.delete("services", NAMESPACE, "made")
        self.seen(fqdn("made"), "NXDOMAIN")

    def test_endpoint_slice_edits(self):
        self.admin.service(make_service(NAMESPACE, "edited", headless=True, ports=[HTTP]))
        self.admin.endpoint_slice(make_endpoint_slice(NAMESPACE, "edited-a", "edited",
                                                      [{"addresses": ["172.1.0.1"], "hostname": "one"}], [HTTP]))
        self.seen(fqdn("edited"), [f"{fqdn('edited')} A 172.1.0.1"])
        self.admin.replace_endpoints(NAMESPACE, "edited-a", [
            {"addresses": ["172.1.0.1"], "hostname": "one"}, {"addresses": ["172.1.0.2"], "hostname": "two"}])
        self.seen(fqdn("edited"), [f"{fqdn('edited')} A 172.1.0.1", f"{fqdn('edited')} A 172.1.0.2"])
        self.seen("two." + fqdn("edited"), [f"two.{fqdn('edited')} A 172.1.0.2"])
        self.admin.endpoint_slice(make_endpoint_slice(NAMESPACE, "edited-b", "edited",
                                                      [{"addresses": ["172.1.0.3"]}], [HTTP]))
        self.seen(fqdn("edited"), [f"{fqdn('edited')} A 172.1.0.{n}" for n in (1, 2, 3)])
        self.admin.delete("endpointslices", NAMESPACE, "edited-a")
        self.seen(fqdn("edited"), [f"{fqdn('edited')} A 172.1.0.3"])
        self.seen("two." + fqdn("edited"), "NXDOMAIN")

    def test_pod_ip_set_and_pod_deleted(self):
        question = f"10-244-1-7.{NAMESPACE}.pod.cluster.local."
        self.assertEqual(self.answers(question), "NXDOMAIN")
        self.admin.pod(make_pod(NAMESPACE, "web", "10.244.1.7"))
        self.seen(question, [f"{question} A 10.244.1.7"])
        self.admin.delete("pods", NAMESPACE, "web")
        self.seen(question, "NXDOMAIN")
