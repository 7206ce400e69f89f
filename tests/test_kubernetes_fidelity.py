"""
CoreDNS's kubernetes answers end to end: the same cluster data loaded into
the test API server, the same queries sent over real UDP to a running
daemon, the same expected records compared.

1. Every table of L{tests.test_kubernetes_records} and
   L{tests.test_kubernetes_multicluster} (each C{TableTestCase}: TestServeDNS,
   namespaces, pods insecure / verified / disabled, ignore empty_service,
   case, apex, reverse, NS, zonal with and without C{zonal}, multicluster,
   multicluster with ignore empty_service, cluster set), one test per table:
   its C{objects} put into an L{ApiServer}, one daemon from a Corefile whose
   stanza is the table's C{options} (as C{kubernetai}, with C{endpoint} and
   C{bind 127.0.0.1}), every row asked over UDP with dnspython, EDNS with a
   4096-byte buffer.  The reply is read with twisted.names, which keeps every
   record as sent (dnspython merges records into RRsets, dropping duplicates
   and all TTLs but the lowest), and compared as the pure tests compare:
   rcode, then each section as sorted zone-file text, SOA serial ignored.  A
   failure names every row that differs and how.
2. The seed README's two Corefiles: three clusters in three zones, and two
   stanzas of one zone on one API server, the first with C{namespaces
   default} and C{fallthrough}.
3. C{apiserver_qps 2} and C{apiserver_burst 1}: by /metrics
   (C{coredns_kubernetes_rest_client_rate_limiter_duration_seconds}), the
   client's rate limiter waited at least what the token bucket implies for
   the calls it let through, (calls - burst) / qps, less the time the calls
   themselves took; a stanza without them, within client-go's default burst,
   waited nothing.

Rows whose answer names this server (ns_test.go's NS row: the services whose
endpoint is this server's address) are asked as the daemon on 127.0.0.1 must
answer them: the pure table's local IP (its C{view.local_ips}) is rewritten
to 127.0.0.1, dotted and dashed, in its objects and its rows alike
(L{readdress}).  The apex table's local IP already is 127.0.0.1.

Skipped: no row.  handler_test.go "CNAME External Truncated Lookup" holds as
its row is written (the CNAME alone): the daemon has no plugin after the
stanza to resolve ext.interwebs.test.
"""

from __future__ import annotations

import dataclasses
import re

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from twisted.internet import defer
from twisted.names import dns as tdns
from twisted.trial import unittest

from tests import test_kubernetes_multicluster as multicluster
from tests import test_kubernetes_records as records
from kubernetai.apiserver.resources import make_namespace, make_service
from kubernetai.apiserver.server import ApiServer
from tests.k8sdata import HTTP
from tests.support import send_raw_udp
from tests.test_health_ready import Running
from tests.test_prometheus import scrape

LOCAL = "127.0.0.1"
EDNS_BUFFER = 4096


def tables() -> list[type]:
    """Every pure table: the TableTestCase subclasses of L{records} and L{multicluster}, in definition order."""
    modules = (records.__name__, multicluster.__name__)
    return [table for table in records.TableTestCase.__subclasses__() if table.__module__ in modules]


def readdress(value, old: str, new: str = LOCAL):
    """C{value} (text, rows, API objects) with the address C{old} written as C{new}, dotted and dashed (10-0-0-1)."""
    if isinstance(value, str):
        for separator in ".-":
            pattern = r"(?<!\d)" + re.escape(old.replace(".", separator)) + r"(?!\d)"
            value = re.sub(pattern, new.replace(".", separator), value)
        return value
    if isinstance(value, dict):
        return {key: readdress(item, old, new) for key, item in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(readdress(item, old, new) for item in value))
    if isinstance(value, (list, tuple)):
        return type(value)(readdress(item, old, new) for item in value)
    return value


def served_here(pure: type) -> tuple[list[dict], list[records.Row]]:
    """A table's objects (one list) and rows, its local IP made the daemon's, 127.0.0.1."""
    objects = pure.objects
    if isinstance(objects, dict):
        objects = [raw for items in objects.values() for raw in items]
    rows = pure.rows
    for local_ip in pure.view.local_ips:
        objects, rows = readdress(objects, local_ip), readdress(rows, local_ip)
    return objects, rows


def corefile(options: str, url: str) -> str:
    """A server block on 127.0.0.1 whose one stanza is a table's C{options}, named kubernetai, with C{endpoint url}."""
    _directive, _, rest = options.partition(" ")
    zones, _, body = rest.partition("{")
    body = body.strip().removesuffix("}").strip()
    return (f".:0 {{\n    bind {LOCAL}\n    kubernetai {zones.strip()} {{\n        endpoint {url}\n"
            f"        {body}\n    }}\n}}\n")


def row_query(row: records.Row) -> dns.message.Message:
    """A row's question as a query, with EDNS and a buffer that holds every row's answer."""
    return dns.message.make_query(row.qname, row.qtype, use_edns=0, payload=EDNS_BUFFER)


@defer.inlineCallbacks
def ask_daemon(port: int, row: records.Row):
    """The daemon's reply to a row's question as L{records.outcome} writes it, and what is wrong with the reply."""
    query = row_query(row)
    wire = yield send_raw_udp(port, query.to_wire(), timeout=5.0)
    return read_reply(query, wire)


def read_reply(query: dns.message.Message, wire: bytes | None):
    """A reply's wire as L{records.outcome} writes it (None if unreadable), and what is wrong with it."""
    if wire is None:
        return None, ["no reply"]
    problems = []
    try:
        reply = dns.message.from_wire(wire)
    except Exception as err:
        return None, [f"dnspython cannot read the reply: {err!r}"]
    if reply.id != query.id:
        problems.append(f"reply ID {reply.id} to query ID {query.id}")
    if reply.flags & dns.flags.TC:
        problems.append("truncated")
    message = tdns.Message()
    message.fromStr(wire)
    if not records.cnames_first(message.answers):
        problems.append("CNAME after its target")
    additional = [record for record in message.additional if record.type != tdns.OPT]
    return records.outcome(reply.rcode(), message.answers, message.authority, additional), problems


def difference(row: records.Row, got, problems: list[str]) -> str:
    """How the daemon's reply to C{row} differs from the row, one line per section."""
    lines = [f"  {records.question(row)}"] + [f"    {problem}" for problem in problems]
    if got is not None:
        for label, want, have in zip(("rcode", "answer", "authority", "additional"), records.expected(row), got):
            if want != have:
                indent = " " * len(label)
                lines.append(f"    {label}: expected {readable(want)}\n    {indent}       got {readable(have)}")
    return "\n".join(lines)


def readable(value) -> str:
    """An rcode, or a section's records on one line: space-separated fields, records apart by ' | '."""
    if isinstance(value, str):
        return value
    return " | ".join(record.replace("\t", " ") for record in value) or "(none)"


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def each_table(cls):
    """Class decorator: one test per pure table, named after it."""
    for pure in tables():
        name = "test_" + snake(pure.__name__.removesuffix("Tests"))
        setattr(cls, name, lambda self, pure=pure: self.check_table(pure))
    return cls


def start_api(testcase, objects=()) -> ApiServer:
    """A test API server holding C{objects}, stopped when the test ends."""
    api = ApiServer()
    api.start()
    testcase.addCleanup(api.stop)
    for raw in objects:
        api.put(raw["kind"], raw)
    return api


@each_table
class TablesThroughDaemonTests(unittest.TestCase):
    """Each pure table's rows asked of a daemon syncing the table's cluster from the test API server."""

    @defer.inlineCallbacks
    def check_table(self, pure: type):
        objects, rows = served_here(pure)
        api = start_api(self, objects)
        running = Running(self, corefile(pure.options, api.url))
        port = yield running.dns_port()
        (stanza,) = running.daemon.shared.stanzas
        self.assertTrue(stanza.cluster.synced, f"{stanza.describe()} did not sync")
        self.assertEqual(dataclasses.replace(stanza.config, endpoint=None), pure.view.config,
                         "the daemon's stanza has other options than the table's")
        differences = []
        for row in rows:
            got, problems = yield ask_daemon(port, row)
            if problems or got != records.expected(row):
                differences.append(difference(row, got, problems))
        if differences:
            self.fail(f"{pure.__name__}: {len(differences)} of {len(rows)} rows differ through the daemon\n"
                      + "\n".join(differences))


def names(reply) -> list[str]:
    """A dnspython reply's answer section as C{name TYPE rdata} lines, sorted."""
    return sorted(f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {item}" for rrset in reply.answer
                  for item in rrset)


@defer.inlineCallbacks
def lookup_a(port: int, name: str):
    """The daemon's reply to C{name} A: (rcode text, answer lines)."""
    query = dns.message.make_query(name, "A", use_edns=0, payload=EDNS_BUFFER)
    reply = dns.message.from_wire((yield send_raw_udp(port, query.to_wire(), timeout=5.0)))
    return dns.rcode.to_text(reply.rcode()), names(reply)


def web(namespace: str, name: str, ip: str) -> list[dict]:
    """A namespace and one ClusterIP service in it, as the API server holds them."""
    return [make_namespace(namespace), make_service(namespace, name, [ip], [HTTP])]


# The seed README's first Corefile: one server, three clusters, a zone each
# (the README's .:53 and endpoints replaced by 127.0.0.1:0 and test API servers).
README_ZONES = ("cluster.local", "assemblage.local", "conglomeration.local")
THREE_CLUSTERS = """.:0 {{
    bind 127.0.0.1
    errors
    log
    kubernetai cluster.local {{
      endpoint {0}
    }}
    kubernetai assemblage.local {{
      endpoint {1}
    }}
    kubernetai conglomeration.local {{
      endpoint {2}
    }}
}}
"""

# The seed README's minikube Corefile: two stanzas of one zone on one API server.
MINIKUBE = """.:0 {{
    bind 127.0.0.1
    errors
    log
    kubernetai cluster.local {{
      endpoint {0}
      namespaces default
      fallthrough
    }}
    kubernetai cluster.local {{
      endpoint {0}
    }}
}}
"""


class ReadmeExamplesTests(unittest.TestCase):
    """The seed README's two examples, as written there, against test API servers."""

    @defer.inlineCallbacks
    def test_three_clusters_each_answers_its_own_zone(self):
        # Each cluster holds web.default at its own address, and a service named after its zone.
        clusters = {zone: [*web("default", "web", f"10.{number}.0.10"),
                           *web("default", zone.split(".")[0], f"10.{number}.0.20")]
                    for number, zone in enumerate(README_ZONES)}
        apis = [start_api(self, objects) for objects in clusters.values()]
        port = yield Running(self, THREE_CLUSTERS.format(*(api.url for api in apis))).dns_port()
        for number, zone in enumerate(README_ZONES):
            got = yield lookup_a(port, f"web.default.svc.{zone}")
            self.assertEqual(got, ("NOERROR", [f"web.default.svc.{zone}. A 10.{number}.0.10"]))
            for other in README_ZONES:
                name = f"{other.split('.')[0]}.default.svc.{zone}"
                got = yield lookup_a(port, name)
                mine = other == zone
                self.assertEqual(got, ("NOERROR", [f"{name}. A 10.{number}.0.20"]) if mine else ("NXDOMAIN", []), name)

    @defer.inlineCallbacks
    def test_minikube_first_stanza_default_then_the_second(self):
        api = start_api(self, web("default", "web", "10.0.0.10") + web("other", "api", "10.0.0.20"))
        running = Running(self, MINIKUBE.format(api.url))
        port = yield running.dns_port()
        asked = []
        for number, stanza in enumerate(running.daemon.shared.stanzas):
            self.patch(stanza, "answer", recording(stanza.answer, number, asked))
        rows = [
            # (name, the daemon's reply, (stanza, rcode) of every stanza asked)
            ("web.default.svc.cluster.local", ("NOERROR", ["web.default.svc.cluster.local. A 10.0.0.10"]),
             [(0, "NOERROR")]),
            ("api.other.svc.cluster.local", ("NOERROR", ["api.other.svc.cluster.local. A 10.0.0.20"]),
             [(0, "NXDOMAIN"), (1, "NOERROR")]),
            ("missing.other.svc.cluster.local", ("NXDOMAIN", []), [(0, "NXDOMAIN"), (1, "NXDOMAIN")]),
        ]
        for name, reply, stanzas in rows:
            del asked[:]
            got = yield lookup_a(port, name)
            self.assertEqual((got, asked), (reply, stanzas), name)


def recording(answer, number: int, asked: list):
    """A stanza's C{answer} that notes (stanza number, rcode) of each of its replies in C{asked}."""

    def answer_and_note(*args, **kwargs):
        response = answer(*args, **kwargs)
        asked.append((number, dns.rcode.to_text(response.rcode)))
        return response

    return answer_and_note


# What the limited stanza allows, and how much less than the bucket implies its
# waits may add up to: the bucket refills while the calls themselves run.
QPS, BURST, SLACK = 2, 1, 0.25
RATE_LIMITER = "coredns_kubernetes_rest_client_rate_limiter_duration_seconds"


def rate_limiter(samples: dict, api: ApiServer) -> tuple[float, float]:
    """(calls, seconds waited) of the REST client's rate limiter for C{api}, all verbs."""
    host = api.url.split("//", 1)[1]

    def total(metric: str) -> float:
        return sum(value for (name, labels), value in samples.items() if name == metric and ("host", host) in labels)

    return total(RATE_LIMITER + "_count"), total(RATE_LIMITER + "_sum")


class ApiserverRateLimitTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_qps_and_burst_make_the_client_wait(self):
        limited = start_api(self, web("default", "web", "10.0.0.10"))
        free = start_api(self, web("default", "web", "10.1.0.10"))
        running = Running(self, f""".:0 {{
    bind 127.0.0.1
    prometheus 127.0.0.1:0
    kubernetai cluster.local {{
        endpoint {limited.url}
        apiserver_qps {QPS}
        apiserver_burst {BURST}
    }}
    kubernetai free.local {{
        endpoint {free.url}
    }}
}}
""")
        yield running.dns_port()
        samples = yield scrape(running)
        watches = [len(stanza.cluster.watchers) for stanza in running.daemon.shared.stanzas]
        calls, waited = rate_limiter(samples, limited)
        self.assertGreaterEqual(calls, watches[0], "one list per watch before the stanza synced")
        self.assertGreaterEqual(waited, (calls - BURST) / QPS - SLACK, f"{calls} calls")
        calls, waited = rate_limiter(samples, free)
        self.assertGreaterEqual(calls, watches[1])
        self.assertLess(waited, 0.01, f"{calls} calls within client-go's default burst of 10")
