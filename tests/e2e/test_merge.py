"""
merge against a real kube-apiserver: two stanzas on one API server play east and west, each
seeing its side's objects through a label selector (C{labels side in (both,east)}), so that one
name has records on both sides.  The merged answer is the union; a name one side holds answers;
a change on one side shows in the merged answer; C{/explain} names both members.
"""

from __future__ import annotations

import json
import urllib.request

from kubernetai.apiserver.resources import make_endpoint_slice, make_service
from tests.e2e.support import Daemon, E2ETestCase, eventually, rcode, records, stanza
from tests.test_daemon import free_port

NAMESPACE = "merge-sides"
PG = {"name": "pg", "port": 5432, "protocol": "TCP"}


def fqdn(service: str) -> str:
    return f"{service}.{NAMESPACE}.svc.cluster.local."


def side(name: str) -> dict:
    return {"side": name}


class MergeTests(E2ETestCase):
    def make_objects(self) -> None:
        self.admin.namespace(NAMESPACE)
        self.admin.service(make_service(NAMESPACE, "db", headless=True, ports=[PG], labels=side("both")))
        for name, addresses in (("east", ["10.0.8.1", "10.0.8.2"]), ("west", ["10.0.8.2", "10.0.8.3"])):
            self.admin.endpoint_slice(make_endpoint_slice(
                NAMESPACE, f"db-{name}", "db", ports=[PG], labels=side(name),
                endpoints=[{"addresses": [address]} for address in addresses]))
            self.admin.service(make_service(NAMESPACE, f"{name}-only", headless=True, ports=[PG], labels=side(name)))
            self.admin.endpoint_slice(make_endpoint_slice(NAMESPACE, f"{name}-only-1", f"{name}-only", ports=[PG],
                                                          labels=side(name),
                                                          endpoints=[{"addresses": [addresses[0]]}]))

    def start(self) -> Daemon:
        self.explain_port = free_port()
        daemon = Daemon(self, "\n".join([
            f"    explain 127.0.0.1:{self.explain_port}",
            stanza("cluster.local", self.identities.cert, f"namespaces {NAMESPACE}", "labels side in (both,east)",
                   "merge sides"),
            stanza("cluster.local", self.identities.token, f"namespaces {NAMESPACE}", "labels side in (both,west)",
                   "merge sides"),
        ]))
        daemon.wait_ready()
        return daemon

    def test_union_of_both_sides(self):
        daemon = self.start()
        self.assertEqual(records(daemon.ask(fqdn("db"))), [f"{fqdn('db')} A 10.0.8.{n}" for n in (1, 2, 3)])
        self.assertEqual(records(daemon.ask(fqdn("db"), tcp=True)), [f"{fqdn('db')} A 10.0.8.{n}" for n in (1, 2, 3)])
        self.assertEqual(records(daemon.ask(fqdn("east-only"))), [f"{fqdn('east-only')} A 10.0.8.1"])
        self.assertEqual(records(daemon.ask(fqdn("west-only"))), [f"{fqdn('west-only')} A 10.0.8.2"])
        self.assertEqual(rcode(daemon.ask(fqdn("nowhere"))), "NXDOMAIN")

    def test_a_change_on_one_side_shows(self):
        daemon = self.start()
        self.assertEqual(len(records(daemon.ask(fqdn("db")))), 3)
        self.admin.replace_endpoints(NAMESPACE, "db-west", [{"addresses": ["10.0.8.9"]}])
        self.addCleanup(self.admin.replace_endpoints, NAMESPACE, "db-west",
                        [{"addresses": ["10.0.8.2"]}, {"addresses": ["10.0.8.3"]}])
        expected = [f"{fqdn('db')} A 10.0.8.{n}" for n in (1, 2, 9)]
        eventually(lambda: records(daemon.ask(fqdn("db"))) == expected, 5.0, "west's new endpoint merged")

    def test_explain_names_both_members(self):
        self.start()
        url = f"http://127.0.0.1:{self.explain_port}/explain?name={fqdn('db')}&format=json"
        with urllib.request.urlopen(url, timeout=5) as response:
            document = json.loads(response.read())
        (group,) = document["steps"][-1]["stanzas"]
        self.assertEqual([len(member["records"]) for member in group["members"]], [2, 2])
        self.assertEqual(len(document["answer"]["answers"]), 3)
