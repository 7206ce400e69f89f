"""
A stanza's answers checked against CoreDNS's: the test tables of CoreDNS's
kubernetes plugin (C{plugin/kubernetes/*_test.go}), row for row, asked of
L{kubernetai.kubernetes.records.answer} over the same clusters
(L{tests.k8sdata}) with the same options.

Each row is a question and the rcode and records CoreDNS answers, in its
zone-file text.  The records are compared as CoreDNS's C{test.SortAndCheck}
compares them, sorted in each section, and more strictly: every field but
the SOA serial, which is the time of the last change.  A row whose text
says what CoreDNS does not answer, in a field its own test never compares,
is written as CoreDNS answers, with a comment.

Changed rather than skipped: handler_test.go "CNAME External Truncated
Lookup" expects what CoreDNS's upstream says of an ExternalName target
outside our zones; we give the CNAME alone for now, and the row says so.

handler_test.go C{TestMultiClusterServeDNS} is in
L{tests.test_kubernetes_multicluster}, which asks the same commonDnsTestCases
(L{COMMON_ROWS}) of its ServiceImports.

Not ported, because they test what this module does not do:
  - handler_test.go C{TestNotSyncedServeDNS}: SERVFAIL before the first
    sync is the plugin's (L{kubernetai.plugins.kubernetai}), not the
    records'.
  - ns_test.go C{TestNsAddrsExternal}, C{TestNsAddrsExternalHeadless},
    C{TestNsAddrsExternalWithPreexistingExternalIP}: the k8s_external plugin's,
    in L{tests.test_k8s_external}.
  - zonal_test.go C{TestEndpointsEquivalentZoneChange}: when the SOA
    serial moves, which is the index's business.
"""

from __future__ import annotations

import socket
from typing import NamedTuple

from twisted.names import dns
from twisted.trial.unittest import SynchronousTestCase

from kubernetai.chain import Response
from kubernetai.corefile import parse_corefile
from kubernetai.kubernetes.config import StanzaConfig, parse_stanza
from kubernetai.kubernetes.entries import View
from kubernetai.kubernetes.records import answer
from kubernetai.zones import most_specific
from tests.k8sdata import NS_TEST, REVERSE_TEST, SERVE_TEST, ZONAL_TEST, snapshot

NOERROR, NXDOMAIN = dns.OK, dns.ENAME
RCODES = {dns.OK: "NOERROR", dns.ENAME: "NXDOMAIN", dns.ESERVER: "SERVFAIL", dns.EREFUSED: "REFUSED"}

SOA = "cluster.local.	5	IN	SOA	ns.dns.cluster.local. hostmaster.cluster.local. 1499347823 7200 1800 86400 5"


class Row(NamedTuple):
    """A question, and the rcode and the records of each section CoreDNS answers it with."""

    qname: str
    qtype: int
    rcode: int
    answer: tuple[str, ...] = ()
    ns: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()


def stanza(text: str) -> StanzaConfig:
    """The options of a C{kubernetes} stanza written as in a Corefile."""
    (block,) = parse_corefile(f". {{\n{text}\n}}\n", "Corefile")
    return parse_stanza(block.directives[0], [address.zone for address in block.addresses])


def ask(view: View, qname: str, qtype: int) -> Response:
    """The stanza's answer to C{qname}, as the plugin asks it: case kept, in the most specific zone."""
    name = qname.lower().rstrip(".") + "."
    return answer(view, qname.rstrip(".").encode("ascii"), name, qtype, most_specific(name, view.config.zones))


def render(record: dns.RRHeader) -> str:
    """A record as zone-file text, as CoreDNS's tables write them."""
    payload = record.payload
    if record.type == dns.A:
        data = payload.dottedQuad()
    elif record.type == dns.AAAA:
        data = socket.inet_ntop(socket.AF_INET6, payload.address)
    elif record.type == dns.SRV:
        data = f"{payload.priority} {payload.weight} {payload.port} {fqdn(payload.target)}"
    elif record.type == dns.SOA:
        data = " ".join([fqdn(payload.mname), fqdn(payload.rname)] + [str(value) for value in (
            payload.serial, payload.refresh, payload.retry, payload.expire, payload.minimum)])
    elif record.type == dns.TXT:
        data = " ".join(f'"{text.decode()}"' for text in payload.data)
    else:
        data = fqdn(payload.name)
    return f"{fqdn(record.name)}\t{record.ttl}\tIN\t{dns.QUERY_TYPES[record.type]}\t{data}"


def fqdn(name: dns.Name) -> str:
    return name.name.decode("ascii") + "."


def comparable(line: str) -> str:
    """A record's text with its owner fully qualified, single tabs, and no SOA serial."""
    fields = line.split()
    fields[0] = fields[0].rstrip(".") + "."
    if fields[3] == "SOA":
        del fields[6]
    return "\t".join(fields)


def section(lines) -> list[str]:
    return sorted(comparable(line) for line in lines)


def cnames_first(records) -> bool:
    """CoreDNS's test.CNAMEOrder: no CNAME comes after a record of the name it points to."""
    for position, record in enumerate(records):
        if record.type == dns.CNAME and any(
            earlier.name == record.payload.name for earlier in records[:position]
        ):
            return False
    return True


def outcome(rcode: int, answers, authority, additional) -> tuple:
    """An answer as the rows write it: the rcode's name, then each section as sorted L{comparable} text."""
    return (
        RCODES.get(rcode, rcode),
        section(map(render, answers)),
        section(map(render, authority)),
        section(map(render, additional)),
    )


def expected(row: Row) -> tuple:
    """What L{outcome} gives for the answer C{row} expects."""
    return RCODES[row.rcode], section(row.answer), section(row.ns), section(row.extra)


def question(row: Row) -> str:
    """A row's question as the tables' comments name it: C{qname TYPE}."""
    return f"{row.qname} {dns.QUERY_TYPES.get(row.qtype, row.qtype)}"


def table(rows):
    """Class decorator: one test per row, named after its question; the rows kept as C{cls.rows}."""

    def add_tests(cls):
        cls.rows = list(rows)
        for number, row in enumerate(rows):
            label = "".join(char if char.isalnum() else "_" for char in row.qname.rstrip("."))
            name = f"test_{number:02d}_{dns.QUERY_TYPES.get(row.qtype, row.qtype)}_{label}"
            setattr(cls, name, lambda self, row=row: self.check(row))
        return cls

    return add_tests


class TableTestCase(SynchronousTestCase):
    """
    Asks each row's question of C{view} and compares the answer with the row.

    A table's C{view} is made of its C{options} (the stanza as a Corefile
    writes it) and its C{objects} (the cluster, as API JSON dicts: a list, or
    lists by the index's kinds), which L{tests.test_kubernetes_fidelity}
    gives to a running daemon and the test API server to ask the same rows.
    """

    options: str
    objects: list | dict
    view: View
    rows: list[Row]

    def check(self, row: Row) -> None:
        response = ask(self.view, row.qname, row.qtype)
        got = outcome(response.rcode, response.answers, response.authority, response.additional)
        self.assertEqual(got, expected(row))
        self.assertTrue(cnames_first(response.answers), "CNAME after its target")


# handler_test.go commonDnsTestCases: the rows CoreDNS asks of both TestServeDNS
# and TestMultiClusterServeDNS (L{tests.test_kubernetes_multicluster}).
COMMON_ROWS = [
    # A Service
    Row("svc1.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "svc1.testns.svc.cluster.local.	5	IN	A	10.0.0.1",
    )),
    Row("svcempty.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "svcempty.testns.svc.cluster.local.	5	IN	A	10.0.0.1",
    )),
    Row("svc1.testns.svc.cluster.local.", dns.SRV, NOERROR, answer=(
        "svc1.testns.svc.cluster.local.	5	IN	SRV	0 100 80 svc1.testns.svc.cluster.local.",
    ), extra=(
        "svc1.testns.svc.cluster.local.  5       IN      A       10.0.0.1",
    )),
    Row("svcempty.testns.svc.cluster.local.", dns.SRV, NOERROR, answer=(
        "svcempty.testns.svc.cluster.local.	5	IN	SRV	0 100 80 svcempty.testns.svc.cluster.local.",
    ), extra=(
        "svcempty.testns.svc.cluster.local.  5       IN      A       10.0.0.1",
    )),
    Row("svc6.testns.svc.cluster.local.", dns.SRV, NOERROR, answer=(
        "svc6.testns.svc.cluster.local.	5	IN	SRV	0 100 80 svc6.testns.svc.cluster.local.",
    ), extra=(
        "svc6.testns.svc.cluster.local.  5       IN      AAAA       1234:abcd::1",
    )),
    # SRV Service
    Row("_http._tcp.svc1.testns.svc.cluster.local.", dns.SRV, NOERROR, answer=(
        "_http._tcp.svc1.testns.svc.cluster.local.	5	IN	SRV	0 100 80 svc1.testns.svc.cluster.local.",
    ), extra=(
        "svc1.testns.svc.cluster.local.	5	IN	A	10.0.0.1",
    )),
    Row("_http._tcp.svcempty.testns.svc.cluster.local.", dns.SRV, NOERROR, answer=(
        "_http._tcp.svcempty.testns.svc.cluster.local.	5	IN	SRV	0 100 80 svcempty.testns.svc.cluster.local.",
    ), extra=(
        "svcempty.testns.svc.cluster.local.	5	IN	A	10.0.0.1",
    )),
    # A Service (Headless)
    Row("hdls1.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.2",
        "hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.3",
        "hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.4",
        "hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.5",
    )),
    # A Service (Headless and Portless)
    Row("hdlsprtls.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "hdlsprtls.testns.svc.cluster.local.	5	IN	A	172.0.0.20",
    )),
    # AAAA Service (with an existing A record, but no AAAA record)
    Row("svc1.testns.svc.cluster.local.", dns.AAAA, NOERROR, ns=(SOA,)),
    # AAAA Service (non-existing service)
    Row("svc0.testns.svc.cluster.local.", dns.AAAA, NXDOMAIN, ns=(SOA,)),
    # A Service (non-existing service)
    Row("svc0.testns.svc.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
    # A Service (non-existing namespace)
    Row("svc0.svc-nons.svc.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
    # TXT Schema
    Row("dns-version.cluster.local.", dns.TXT, NOERROR, answer=(
        'dns-version.cluster.local 28800 IN TXT "1.1.0"',
    )),
    # A TXT record does not exist but another record for the same FQDN does
    Row("svc1.testns.svc.cluster.local.", dns.TXT, NOERROR, ns=(SOA,)),
    # A TXT record does not exist and neither does another record for the same FQDN
    Row("svc0.svc-nons.svc.cluster.local.", dns.TXT, NXDOMAIN, ns=(SOA,)),
    # A Service (Headless) does not exist
    Row("bogusendpoint.hdls1.testns.svc.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
    # A Service does not exist
    Row("bogusendpoint.svc0.testns.svc.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
    # AAAA Service
    Row("svc6.testns.svc.cluster.local.", dns.AAAA, NOERROR, answer=(
        "svc6.testns.svc.cluster.local.	5	IN	AAAA	1234:abcd::1",
    )),
    # SRV
    Row("_http._tcp.svc6.testns.svc.cluster.local.", dns.SRV, NOERROR, answer=(
        "_http._tcp.svc6.testns.svc.cluster.local.	5	IN	SRV	0 100 80 svc6.testns.svc.cluster.local.",
    ), extra=(
        "svc6.testns.svc.cluster.local.	5	IN	AAAA	1234:abcd::1",
    )),
    # AAAA Service (Headless)
    Row("hdls1.testns.svc.cluster.local.", dns.AAAA, NOERROR, answer=(
        "hdls1.testns.svc.cluster.local.	5	IN	AAAA	5678:abcd::1",
        "hdls1.testns.svc.cluster.local.	5	IN	AAAA	5678:abcd::2",
    )),
    Row("svc.cluster.local.", dns.A, NOERROR, ns=(SOA,)),
    Row("pod.cluster.local.", dns.A, NOERROR, ns=(SOA,)),
    Row("testns.svc.cluster.local.", dns.A, NOERROR, ns=(SOA,)),
    # NS query for qname != zone (existing domain)
    Row("svc.cluster.local.", dns.NS, NOERROR, ns=(SOA,)),
    Row("testns.svc.cluster.local.", dns.NS, NOERROR, ns=(SOA,)),
    # NS query for qname != zone (non existing domain)
    Row("foo.cluster.local.", dns.NS, NXDOMAIN, ns=(SOA,)),
    Row("foo.svc.cluster.local.", dns.NS, NXDOMAIN, ns=(SOA,)),
    # Dual Stack ClusterIP Services
    Row("svc-dual-stack.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "svc-dual-stack.testns.svc.cluster.local.	5	IN	A	10.0.0.3",
    )),
    Row("svc-dual-stack.testns.svc.cluster.local.", dns.AAAA, NOERROR, answer=(
        "svc-dual-stack.testns.svc.cluster.local.	5	IN	AAAA	10::3",
    )),
    Row("svc-dual-stack.testns.svc.cluster.local.", dns.SRV, NOERROR, answer=(
        "svc-dual-stack.testns.svc.cluster.local.	5	IN	SRV	0 50 80 svc-dual-stack.testns.svc.cluster.local.",
    ), extra=(
        "svc-dual-stack.testns.svc.cluster.local.  5       IN      A       10.0.0.3",
        "svc-dual-stack.testns.svc.cluster.local.  5       IN      AAAA       10::3",
    )),
    Row("svc1.testns.svc.cluster.local.", dns.SOA, NOERROR, ns=(SOA,)),
    # A query for a subdomain of an external service should not resolve to the external service
    Row("endpoint.external.testns.svc.cluster.local.", dns.CNAME, NXDOMAIN, ns=(SOA,)),
    # A query for a subdomain of a subdomain of an external service should not resolve to the external service
    Row("subdomain.subdomain.external.testns.svc.cluster.local.", dns.CNAME, NXDOMAIN, ns=(SOA,)),
]

# handler_test.go: commonDnsTestCases, then dnsTestCases (TestServeDNS).
SERVE_DNS_ROWS = COMMON_ROWS + [
    # SRV Service (Headless)
    Row("_http._tcp.hdls1.testns.svc.cluster.local.", dns.SRV, NOERROR, answer=(
        "_http._tcp.hdls1.testns.svc.cluster.local.	5	IN	SRV	0 16 80 172-0-0-2.hdls1.testns.svc.cluster.local.",
        "_http._tcp.hdls1.testns.svc.cluster.local.	5	IN	SRV	0 16 80 172-0-0-3.hdls1.testns.svc.cluster.local.",
        "_http._tcp.hdls1.testns.svc.cluster.local.	5	IN	SRV	0 16 80 5678-abcd--1.hdls1.testns.svc.cluster.local.",
        "_http._tcp.hdls1.testns.svc.cluster.local.	5	IN	SRV	0 16 80 5678-abcd--2.hdls1.testns.svc.cluster.local.",
        "_http._tcp.hdls1.testns.svc.cluster.local.	5	IN	SRV	0 16 80 dup-name.hdls1.testns.svc.cluster.local.",
    ), extra=(
        "172-0-0-2.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.2",
        "172-0-0-3.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.3",
        "5678-abcd--1.hdls1.testns.svc.cluster.local.	5	IN	AAAA	5678:abcd::1",
        "5678-abcd--2.hdls1.testns.svc.cluster.local.	5	IN	AAAA	5678:abcd::2",
        "dup-name.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.4",
        "dup-name.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.5",
    )),
    # An A record query for an existing headless service should return a record for each of its ipv4 endpoints
    Row("hdls1.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.2",
        "hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.3",
        "hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.4",
        "hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.5",
    )),
    # AAAA
    Row("5678-abcd--2.hdls1.testns.svc.cluster.local", dns.AAAA, NOERROR, answer=(
        "5678-abcd--2.hdls1.testns.svc.cluster.local.	5	IN	AAAA	5678:abcd::2",
    )),
    # AAAA Endpoint
    Row("5678-abcd--1.hdls1.testns.svc.cluster.local.", dns.AAAA, NOERROR, answer=(
        "5678-abcd--1.hdls1.testns.svc.cluster.local.	5	IN	AAAA	5678:abcd::1",
    )),
    # An Endpoint with no port
    Row("172-0-0-20.hdlsprtls.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "172-0-0-20.hdlsprtls.testns.svc.cluster.local.	5	IN	A	172.0.0.20",
    )),
    # An Endpoint ip
    Row("172-0-0-2.hdls1.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "172-0-0-2.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.2",
    )),
    # A Endpoint ip
    Row("172-0-0-3.hdls1.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "172-0-0-3.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.3",
    )),
    # An Endpoint by name
    Row("dup-name.hdls1.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "dup-name.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.4",
        "dup-name.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.5",
    )),
    # CNAME External
    Row("external.testns.svc.cluster.local.", dns.CNAME, NOERROR, answer=(
        "external.testns.svc.cluster.local.	5	IN	CNAME	ext.interwebs.test.",
    )),
    # CNAME External Truncated Lookup.  CoreDNS adds what its upstream says
    # of the target ("ext.interwebs.test. 5 IN A 1.2.3.4", and the upstream's
    # TC bit); we do not look outside our zones yet, and give the CNAME alone.
    Row("external.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "external.testns.svc.cluster.local.	5	IN	CNAME	ext.interwebs.test.",
    )),
    # CNAME External To Internal Service
    Row("external-to-service.testns.svc.cluster.local", dns.A, NOERROR, answer=(
        "external-to-service.testns.svc.cluster.local.	5	IN	CNAME	svc1.testns.svc.cluster.local.",
        "svc1.testns.svc.cluster.local.	5	IN	A	10.0.0.1",
    )),
]


@table(SERVE_DNS_ROWS)
class ServeDNSTests(TableTestCase):
    """handler_test.go TestServeDNS: the ServeTest cluster, namespace testns exposed."""

    options = "kubernetes cluster.local {\n namespaces testns\n}"
    objects = SERVE_TEST
    view = View(stanza(options), snapshot(objects))


# handler_test.go nsTestCases.  CoreDNS's TestServeNamespaceDNS throws
# SortAndCheck's verdict away, and the row's SOA ("300 ... 30") is not what
# CoreDNS answers (backend_lookup.go SOA: TTL and minimum are the stanza's
# ttl, 5); written here as CoreDNS answers.
NAMESPACE_ROWS = [
    # A Service for an "exposed" namespace that "does exist"
    Row("svc1.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "svc1.testns.svc.cluster.local.	5	IN	A	10.0.0.1",
    )),
    # A service for an "exposed" namespace that "doesn't exist"
    Row("svc1.nsnoexist.svc.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
]


@table(NAMESPACE_ROWS)
class ServeNamespaceDNSTests(TableTestCase):
    """handler_test.go TestServeNamespaceDNS: no namespaces option, so every namespace is exposed."""

    options = "kubernetes cluster.local"
    objects = SERVE_TEST
    view = View(stanza(options), snapshot(objects))


# handler_pod_insecure_test.go.  The rows' SOA minimum "30" is not what
# CoreDNS answers (its ttl, 5) and its test does not compare it; written as
# CoreDNS answers.
POD_INSECURE_ROWS = [
    Row("10-240-0-1.podns.pod.cluster.local.", dns.A, NOERROR, answer=(
        "10-240-0-1.podns.pod.cluster.local.	5	IN	A	10.240.0.1",
    )),
    Row("172-0-0-2.podns.pod.cluster.local.", dns.A, NOERROR, answer=(
        "172-0-0-2.podns.pod.cluster.local.	5	IN	A	172.0.0.2",
    )),
    Row("blah.podns.pod.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
    Row("blah.podns.pod.cluster.local.", dns.AAAA, NXDOMAIN, ns=(SOA,)),
    Row("blah.podns.pod.cluster.local.", dns.HINFO, NXDOMAIN, ns=(SOA,)),
    Row("blah.pod-nons.pod.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
    Row("podns.pod.cluster.local.", dns.A, NOERROR, ns=(SOA,)),
]


@table(POD_INSECURE_ROWS)
class PodsInsecureTests(TableTestCase):
    """handler_pod_insecure_test.go TestServeDNSModeInsecure."""

    options = "kubernetes cluster.local {\n pods insecure\n}"
    objects = SERVE_TEST
    view = View(stanza(options), snapshot(objects))


# handler_pod_verified_test.go
POD_VERIFIED_ROWS = [
    Row("10-240-0-1.podns.pod.cluster.local.", dns.A, NOERROR, answer=(
        "10-240-0-1.podns.pod.cluster.local.	5	IN	A	10.240.0.1",
    )),
    Row("podns.pod.cluster.local.", dns.A, NOERROR, ns=(SOA,)),
    Row("svcns.svc.cluster.local.", dns.A, NOERROR, ns=(SOA,)),
    Row("pod-nons.pod.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
    Row("172-0-0-2.podns.pod.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
]


@table(POD_VERIFIED_ROWS)
class PodsVerifiedTests(TableTestCase):
    """handler_pod_verified_test.go TestServeDNSModeVerified."""

    options = "kubernetes cluster.local {\n pods verified\n}"
    objects = SERVE_TEST
    view = View(stanza(options), snapshot(objects))


# handler_pod_disabled_test.go
POD_DISABLED_ROWS = [
    Row("10-240-0-1.podns.pod.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
    Row("172-0-0-2.podns.pod.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
]


@table(POD_DISABLED_ROWS)
class PodsDisabledTests(TableTestCase):
    """handler_pod_disabled_test.go TestServeDNSModeDisabled."""

    options = "kubernetes cluster.local {\n pods disabled\n}"
    objects = SERVE_TEST
    view = View(stanza(options), snapshot(objects))


# handler_ignore_emptyservice_test.go
EMPTY_SERVICE_ROWS = [
    # A Service
    Row("svcempty.testns.svc.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
    # CNAME to external
    Row("external.testns.svc.cluster.local.", dns.CNAME, NOERROR, answer=(
        "external.testns.svc.cluster.local.	5	IN	CNAME	ext.interwebs.test.",
    )),
]


@table(EMPTY_SERVICE_ROWS)
class IgnoreEmptyServiceTests(TableTestCase):
    """handler_ignore_emptyservice_test.go TestServeDNSEmptyService."""

    options = "kubernetes cluster.local {\n ignore empty_service\n}"
    objects = SERVE_TEST
    view = View(stanza(options), snapshot(objects))


# handler_case_test.go
PRESERVE_CASE_ROWS = [
    # Negative response
    Row("not-a-service.testns.svc.ClUsTeR.lOcAl.", dns.A, NXDOMAIN, ns=(
        "ClUsTeR.lOcAl.	5	IN	SOA	ns.dns.ClUsTeR.lOcAl. hostmaster.ClUsTeR.lOcAl. 1499347823 7200 1800 86400 5",
    )),
    # A Service
    Row("SvC1.TeStNs.SvC.cLuStEr.LoCaL.", dns.A, NOERROR, answer=(
        "SvC1.TeStNs.SvC.cLuStEr.LoCaL.	5	IN	A	10.0.0.1",
    )),
    # SRV Service
    Row("_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL.", dns.SRV, NOERROR, answer=(
        "_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL.	5	IN	SRV	0 100 80 svc1.testns.svc.cLuStEr.LoCaL.",
    ), extra=(
        "svc1.testns.svc.cLuStEr.LoCaL.	5	IN	A	10.0.0.1",
    )),
    Row("Cluster.local.", dns.SOA, NOERROR, answer=(
        "Cluster.local.	5	IN	SOA	ns.dns.Cluster.local. hostmaster.Cluster.local. 1499347823 7200 1800 86400 5",
    )),
]


@table(PRESERVE_CASE_ROWS)
class PreserveCaseTests(TableTestCase):
    """handler_case_test.go TestPreserveCase: the answer keeps the question's case."""

    options = "kubernetes cluster.local {\n ignore empty_service\n}"
    objects = SERVE_TEST
    view = View(stanza(options), snapshot(objects))


# kubernetes_apex_test.go
APEX_ROWS = [
    Row("cluster.local.", dns.SOA, NOERROR, answer=(SOA,)),
    Row("cluster.local.", dns.HINFO, NOERROR, ns=(SOA,)),
    Row("cluster.local.", dns.NS, NOERROR, answer=(
        "cluster.local. 5     IN      NS     ns.dns.cluster.local.",
    ), extra=(
        "ns.dns.cluster.local.   5       IN      A       127.0.0.1",
    )),
    Row("cluster.local.", dns.A, NOERROR, ns=(SOA,)),
    Row("cluster.local.", dns.AAAA, NOERROR, ns=(SOA,)),
    Row("cluster.local.", dns.SRV, NOERROR, ns=(SOA,)),
]


@table(APEX_ROWS)
class ApexTests(TableTestCase):
    """kubernetes_apex_test.go TestServeDNSApex: the server answers on 127.0.0.1."""

    options = "kubernetes cluster.local"
    objects = SERVE_TEST
    view = View(stanza(options), snapshot(objects), local_ips=("127.0.0.1",))


# reverse_test.go
REVERSE_ZONES = (
    "cluster.local 0.10.in-addr.arpa 168.192.in-addr.arpa"
    " 0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa"
    " 0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.7.7.0.0.0.0.d.f.ip6.arpa"
)
REVERSE_SOA = (
    "0.10.in-addr.arpa.	5	IN	SOA	ns.dns.0.10.in-addr.arpa. hostmaster.0.10.in-addr.arpa. 1502782828 7200 1800 86400 5"
)
REVERSE_ROWS = [
    Row("100.0.0.10.in-addr.arpa.", dns.PTR, NOERROR, answer=(
        "100.0.0.10.in-addr.arpa.      5    IN      PTR       ep1a.svc1.testns.svc.cluster.local.",
    )),
    Row("100.1.168.192.in-addr.arpa.", dns.PTR, NOERROR, answer=(
        "100.1.168.192.in-addr.arpa.     5     IN      PTR       svc1.testns.svc.cluster.local.",
    )),
    # A PTR record query for an existing ipv6 endpoint should return a record
    Row("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.", dns.PTR, NOERROR, answer=(
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa. 5 IN PTR"
        " ep1b.svc1.testns.svc.cluster.local.",
    )),
    Row("a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.7.7.0.0.0.0.d.f.ip6.arpa.", dns.PTR, NOERROR, answer=(
        "a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.7.7.0.0.0.0.d.f.ip6.arpa. 5 IN PTR"
        " ip6svc1ex.svc1.testns.svc.cluster.local.",
    )),
    Row("6.a.b.9.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.7.7.0.0.0.0.d.f.ip6.arpa.", dns.PTR, NOERROR, answer=(
        "6.a.b.9.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.7.7.0.0.0.0.d.f.ip6.arpa. 5 IN PTR"
        " ip6svc1in.svc1.testns.svc.cluster.local.",
    )),
    Row("101.0.0.10.in-addr.arpa.", dns.PTR, NXDOMAIN, ns=(REVERSE_SOA,)),
    Row("example.org.cluster.local.", dns.PTR, NXDOMAIN, ns=(SOA,)),
    Row("svc1.testns.svc.cluster.local.", dns.PTR, NOERROR, ns=(SOA,)),
    Row("svc1.testns.svc.0.10.in-addr.arpa.", dns.A, NXDOMAIN, ns=(REVERSE_SOA,)),
    Row("100.0.0.10.cluster.local.", dns.PTR, NXDOMAIN, ns=(SOA,)),
    Row("99.0.0.10.in-addr.arpa.", dns.PTR, NOERROR, answer=(
        "99.0.0.10.in-addr.arpa.      5    IN      PTR       double-ep.svc1.testns.svc.cluster.local.",
        "99.0.0.10.in-addr.arpa.      5    IN      PTR       double-ep.svc2.testns.svc.cluster.local.",
    )),
]


@table(REVERSE_ROWS)
class ReverseTests(TableTestCase):
    """reverse_test.go TestReverse: PTR for cluster IPs and endpoints, in the stanza's reverse zones."""

    options = f"kubernetes {REVERSE_ZONES}"
    objects = REVERSE_TEST
    view = View(stanza(options), snapshot(objects))


# ns_test.go TestNsAddrs checks nsAddrs, the addresses of the services
# whose endpoint this server (10.244.0.20) is; CoreDNS answers an NS query
# at the apex with those as the additional section, and one NS record per
# name (backend_lookup.go NS).
NS_ROWS = [
    Row("inter.webs.test.", dns.NS, NOERROR, answer=(
        "inter.webs.test.	5	IN	NS	dns-service.kube-system.svc.inter.webs.test.",
        "inter.webs.test.	5	IN	NS	10-244-0-20.hdls-dns-service.kube-system.svc.inter.webs.test.",
        "inter.webs.test.	5	IN	NS	dns6-service.kube-system.svc.inter.webs.test.",
    ), extra=(
        "dns-service.kube-system.svc.inter.webs.test.	5	IN	A	10.0.0.111",
        "10-244-0-20.hdls-dns-service.kube-system.svc.inter.webs.test.	5	IN	A	10.244.0.20",
        "dns6-service.kube-system.svc.inter.webs.test.	5	IN	AAAA	10::111",
    )),
]


@table(NS_ROWS)
class NameServerTests(TableTestCase):
    """ns_test.go TestNsAddrs, asked as the NS query it serves."""

    options = "kubernetes inter.webs.test"
    objects = NS_TEST
    view = View(stanza(options), snapshot(objects), local_ips=("10.244.0.20",))


# zonal_test.go zonalTestCases
ZONAL_ROWS = [
    # pin: endpoints narrowed to the requested zone
    Row("us-west-2a.pin._zone.hdls.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "us-west-2a.pin._zone.hdls.testns.svc.cluster.local.	5	IN	A	172.0.0.1",
    )),
    Row("us-west-2b.pin._zone.hdls.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "us-west-2b.pin._zone.hdls.testns.svc.cluster.local.	5	IN	A	172.0.0.2",
        "us-west-2b.pin._zone.hdls.testns.svc.cluster.local.	5	IN	A	172.0.0.3",
    )),
    # pin: any zone label without matching endpoints is the same determinate empty answer
    Row("us-west-2c.pin._zone.hdls.testns.svc.cluster.local.", dns.A, NOERROR, ns=(SOA,)),
    # prefer: narrows exactly like pin when the zone is populated
    Row("us-west-2a.prefer._zone.hdls.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "us-west-2a.prefer._zone.hdls.testns.svc.cluster.local.	5	IN	A	172.0.0.1",
    )),
    # prefer: an empty zone falls back to every endpoint
    Row("us-west-2c.prefer._zone.hdls.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local.	5	IN	A	172.0.0.1",
        "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local.	5	IN	A	172.0.0.2",
        "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local.	5	IN	A	172.0.0.3",
    )),
    # a nonexistent service stays NXDOMAIN under any directive
    Row("us-west-2a.pin._zone.ghost.testns.svc.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
    # an unknown directive keeps the stock too-long NXDOMAIN
    Row("us-west-2a.florp._zone.hdls.testns.svc.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
    # zone-scoped names are defined for headless services only
    Row("us-west-2a.pin._zone.clstr.testns.svc.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
    # pin: exists-but-empty stays NODATA for non-address qtypes too
    Row("us-west-2c.pin._zone.hdls.testns.svc.cluster.local.", dns.TXT, NOERROR, ns=(SOA,)),
    # prefer: SRV narrows when populated and falls back when not, same as A
    Row("us-west-2c.prefer._zone.hdls.testns.svc.cluster.local.", dns.SRV, NOERROR, answer=(
        "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local.	5	IN	SRV	0 33 80 172-0-0-1.hdls.testns.svc.cluster.local.",
        "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local.	5	IN	SRV	0 33 80 172-0-0-2.hdls.testns.svc.cluster.local.",
        "us-west-2c.prefer._zone.hdls.testns.svc.cluster.local.	5	IN	SRV	0 33 80 172-0-0-3.hdls.testns.svc.cluster.local.",
    ), extra=(
        "172-0-0-1.hdls.testns.svc.cluster.local.	5	IN	A	172.0.0.1",
        "172-0-0-2.hdls.testns.svc.cluster.local.	5	IN	A	172.0.0.2",
        "172-0-0-3.hdls.testns.svc.cluster.local.	5	IN	A	172.0.0.3",
    )),
    # prefer: TXT on a zonal name is NODATA like every non-address type
    Row("us-west-2c.prefer._zone.hdls.testns.svc.cluster.local.", dns.TXT, NOERROR, ns=(SOA,)),
    # pin: SRV comes out zone-filtered, since filtering happens at endpoint selection
    Row("us-west-2b.pin._zone.hdls.testns.svc.cluster.local.", dns.SRV, NOERROR, answer=(
        "us-west-2b.pin._zone.hdls.testns.svc.cluster.local.	5	IN	SRV	0 50 80 172-0-0-2.hdls.testns.svc.cluster.local.",
        "us-west-2b.pin._zone.hdls.testns.svc.cluster.local.	5	IN	SRV	0 50 80 172-0-0-3.hdls.testns.svc.cluster.local.",
    ), extra=(
        "172-0-0-2.hdls.testns.svc.cluster.local.	5	IN	A	172.0.0.2",
        "172-0-0-3.hdls.testns.svc.cluster.local.	5	IN	A	172.0.0.3",
    )),
]


@table(ZONAL_ROWS)
class ZonalTests(TableTestCase):
    """zonal_test.go TestServeDNSZonal with C{zonal}: zone-scoped names of headless services."""

    options = "kubernetes cluster.local {\n namespaces testns\n zonal\n}"
    objects = ZONAL_TEST
    view = View(stanza(options), snapshot(objects))


# zonal_test.go zonalDisabledTestCases: without the option the shape is too long.
ZONAL_DISABLED_ROWS = [
    Row("us-west-2a.pin._zone.hdls.testns.svc.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
]


@table(ZONAL_DISABLED_ROWS)
class ZonalDisabledTests(TableTestCase):
    """zonal_test.go TestServeDNSZonal without C{zonal}."""

    options = "kubernetes cluster.local {\n namespaces testns\n}"
    objects = ZONAL_TEST
    view = View(stanza(options), snapshot(objects))
