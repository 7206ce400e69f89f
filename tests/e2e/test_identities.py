"""
Who the daemon is to a real kube-apiserver with RBAC: two stanzas of one zone through two
identities (a client certificate and a ServiceAccount token) with C{fallthrough}; a token from
an C{exec} credential plugin; and an identity with no rights, whose stanza never syncs while
the others serve, named by C{/ready}, and logged as forbidden, never with a secret.
"""

from __future__ import annotations

import re
import time

from kubernetai.apiserver.resources import make_service
from tests.e2e.support import Daemon, E2ETestCase, eventually, rcode, records, stanza

FIRST, SECOND = "identities-a", "identities-b"
HTTP = {"name": "http", "port": 80, "protocol": "TCP"}
# What the no-rights stanza's watches list: Services, EndpointSlices, Namespaces.
WATCHED = ("services", "endpointslices", "namespaces")
FORBIDDEN_ZONE = "forbidden.local"
# How long the refused watches go on retrying before their log lines are counted.
FORBIDDEN_RETRIES_FOR = 5.0


def fqdn(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.cluster.local."


def forbidden_about(log: str, kind: str) -> list[str]:
    """The log's lines that say a request for C{kind} was forbidden."""
    return [line for line in log.splitlines()
            if "forbidden" in line.lower() and re.search(rf"\b{kind}\b", line.lower())]


class IdentityTests(E2ETestCase):
    def make_objects(self) -> None:
        for namespace, address in ((FIRST, "10.0.3.1"), (SECOND, "10.0.3.2")):
            self.admin.namespace(namespace)
            self.admin.service(make_service(namespace, "web", [address], [HTTP]))

    def test_two_stanzas_of_one_zone_with_fallthrough(self):
        daemon = Daemon(self, "\n".join([
            stanza("cluster.local", self.identities.cert, f"namespaces {FIRST}", "fallthrough"),
            stanza("cluster.local", self.identities.token, f"namespaces {SECOND}"),
        ]))
        daemon.wait_ready()
        self.assertEqual(records(daemon.ask(fqdn("web", FIRST))), [f"{fqdn('web', FIRST)} A 10.0.3.1"])
        self.assertEqual(records(daemon.ask(fqdn("web", SECOND))), [f"{fqdn('web', SECOND)} A 10.0.3.2"])
        self.assertEqual(rcode(daemon.ask(fqdn("web", "nowhere"))), "NXDOMAIN")

    def test_exec_credential_plugin(self):
        daemon = Daemon(self, stanza("cluster.local", self.identities.exec))
        daemon.wait_ready()
        self.assertEqual(records(daemon.ask(fqdn("web", FIRST))), [f"{fqdn('web', FIRST)} A 10.0.3.1"])

    def without_rights(self) -> Daemon:
        """A daemon whose first stanza has no rights and whose second serves; once each watch
        of the first has been refused."""
        daemon = Daemon(self, "\n".join([
            stanza(FORBIDDEN_ZONE, self.identities.no_rights),
            stanza("cluster.local", self.identities.token),
        ]))
        daemon.wait_answering(fqdn("web", FIRST))
        eventually(lambda: all(forbidden_about(daemon.log(), kind) for kind in WATCHED), 10.0,
                   "a forbidden line for each watched resource")
        return daemon

    def test_identity_without_rights(self):
        daemon = self.without_rights()
        self.assertEqual(records(daemon.ask(fqdn("web", SECOND))), [f"{fqdn('web', SECOND)} A 10.0.3.2"])
        self.assertEqual(rcode(daemon.ask(f"web.{FIRST}.svc.{FORBIDDEN_ZONE}.")), "SERVFAIL")
        status, text = daemon.ready()
        self.assertEqual(status, 503)
        self.assertIn(FORBIDDEN_ZONE, text)
        self.assertNotIn("cluster.local", text)
        log = daemon.log()
        for secret in self.identities.secrets:
            self.assertNotIn(secret, log)

    def test_forbidden_logged_once_per_resource(self):
        daemon = self.without_rights()
        time.sleep(FORBIDDEN_RETRIES_FOR)
        log = daemon.log()
        self.assertEqual({kind: len(forbidden_about(log, kind)) for kind in WATCHED}, dict.fromkeys(WATCHED, 1))

