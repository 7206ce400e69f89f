"""
loadbalance and loop: their Corefile options and refusals; CoreDNS's
shuffle and subnet preference as pure functions; loadbalance through a
running daemon (forwarded answers with a CNAME, and a headless service whose
answers the fast path would otherwise replay); loop detecting a daemon that
forwards to itself, in process and as a twistd process that exits 1, and
staying quiet when there is no loop.
"""

from __future__ import annotations

import ipaddress
import re

import dns.message
import dns.name
import dns.rrset
from twisted.internet import defer, reactor, task
from twisted.names import dns as tdns
from twisted.trial import unittest

from kubernetai.chain import Response
from kubernetai.daemon import build_daemon
from kubernetai.plugins import loadbalance, loop
from kubernetai.apiserver.resources import make_endpoint_slice, make_namespace, make_service
from tests.support import (
    FakeUpstream,
    build,
    capture_logs,
    one_test_per_row,
    query,
    refusal,
    start_daemon,
    write_corefile,
)
from tests.test_daemon import free_port, twistd
from tests.test_health_ready import Running
from tests.test_kubernetes_fidelity import start_api

ADDRESSES = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]
QUERIES = 40


def record(text: str) -> tdns.RRHeader:
    """One record from C{NAME TYPE RDATA} (A, AAAA, CNAME, MX or TXT), TTL 300."""
    name, kind, *data = text.split()
    payloads = {
        "A": lambda: tdns.Record_A(data[0]),
        "AAAA": lambda: tdns.Record_AAAA(data[0]),
        "CNAME": lambda: tdns.Record_CNAME(data[0]),
        "MX": lambda: tdns.Record_MX(int(data[0]), data[1]),
        "TXT": lambda: tdns.Record_TXT(data[0].encode()),
    }
    payload = payloads[kind]()
    return tdns.RRHeader(name, payload.TYPE, tdns.IN, 300, payload)


def text(records: list[tdns.RRHeader]) -> list[str]:
    """Records as C{TYPE RDATA} (the target of a CNAME, the address of an A or AAAA), for comparing orders."""
    return [f"{tdns.QUERY_TYPES[r.type]} {_rdata(r.payload)}" for r in records]


def _rdata(payload) -> str:
    if isinstance(payload, tdns.Record_A):
        return payload.dottedQuad()
    if isinstance(payload, tdns.Record_AAAA):
        return str(ipaddress.ip_address(payload.address))
    if isinstance(payload, tdns.Record_CNAME):
        return payload.name.name.decode()
    return str(payload)


def kinds(records: list[tdns.RRHeader]) -> list[str]:
    return [tdns.QUERY_TYPES[r.type] for r in records]


# loadbalance lines that parse, and the subnets they prefer.
BALANCERS = [
    ("loadbalance", ()),
    ("loadbalance round_robin", ()),
    ("loadbalance {\n  prefer 10.9.20.0/24 192.168.1.0/24\n }", ("10.9.20.0/24", "192.168.1.0/24")),
    ("loadbalance round_robin {\n  prefer 2001:db8::/32\n  prefer 10.9.20.5/24\n }",
     ("2001:db8::/32", "10.9.20.0/24")),
    ("loadbalance {\n  prefer\n }", ()),
]


# loadbalance and loop lines refused, and what the error says.
REFUSED = [
    ("loadbalance fleeb", "Corefile:2: plugin/loadbalance: unknown policy: fleeb"),
    ("loadbalance round_robin a", "Corefile:2: plugin/loadbalance: unknown property for round_robin"),
    ("loadbalance weighted wfile", "Corefile:2: plugin/loadbalance: policy 'weighted' is not supported by kubernetai"),
    ("loadbalance weighted", "Corefile:2: plugin/loadbalance: policy 'weighted' is not supported by kubernetai"),
    ("loadbalance {\n  susu\n }", "Corefile:3: plugin/loadbalance: unknown property 'susu'"),
    ("loadbalance {\n  reload 10s\n }", "Corefile:3: plugin/loadbalance: unknown property 'reload'"),
    ("loadbalance {\n  prefer 10.0.0.1\n }",
     "Corefile:3: plugin/loadbalance: invalid CIDR '10.0.0.1': invalid CIDR address: 10.0.0.1"),
    ("loadbalance {\n  prefer 10.0.0.0/33\n }", "Corefile:3: plugin/loadbalance: invalid CIDR '10.0.0.0/33'"),
    ("loadbalance {\n  prefer example.org/8\n }", "Corefile:3: plugin/loadbalance: invalid CIDR 'example.org/8'"),
    ("loadbalance\n loadbalance", "Corefile:3: plugin/loadbalance: this plugin can only be used once per server block"),
    ("loop argument", "Corefile:2: plugin/loop: unexpected argument 'argument': expected at most 0"),
    ("loop {\n  option\n }", "Corefile:3: plugin/loop: unknown option 'option'"),
    ("loop\n loop", "Corefile:3: plugin/loop: this plugin can only be used once per server block"),
]


@one_test_per_row("good", BALANCERS, lambda row: row[0])
@one_test_per_row("bad", REFUSED, lambda row: row[1].partition(": ")[2])
class SetupTests(unittest.SynchronousTestCase):
    """setup_test.go's rows, and the options CoreDNS added since (prefer)."""

    def check_good(self, row):
        line, subnets = row
        config = build(".:53 {\n " + line + "\n}\n")
        (handler,) = config.handlers
        self.assertEqual(tuple(str(subnet) for subnet in handler.prefer), subnets, line)
        plan = "loadbalance round_robin (A, AAAA, MX)" + (" prefer " + " ".join(subnets) if subnets else "")
        self.assertEqual(config.plan, [plan], line)

    def check_bad(self, row):
        line, message = row
        self.assertIn(message, refusal(f".:53 {{\n {line}\n}}\n"))

    def test_loop_probes_the_first_zone_at_the_block_address(self):
        """The first key's zone, the first bind address (loopback for none or a wildcard), the first port."""
        rows = [
            (".:53 {\n loop\n}\n", ".", "127.0.0.1:53", ":53"),
            ("cluster.local:1053 in-addr.arpa:1053 {\n loop\n}\n", "cluster.local.", "127.0.0.1:1053", ":1053"),
            (".:53 {\n bind 10.0.0.1 10.0.0.2\n loop\n}\n", ".", "10.0.0.1:53", "10.0.0.1:53"),
            (".:53 {\n bind ::\n loop\n}\n", ".", "[::1]:53", "[::]:53"),
        ]
        for corefile, zone, target, address in rows:
            config = build(corefile)
            handler = config.handlers[-1]
            self.assertEqual((handler.zone, handler.address), (zone, address), corefile)
            self.assertTrue(handler.qname.endswith("." + zone if zone != "." else "."), handler.qname)
            self.assertIn(f"loop (probe HINFO {handler.qname} to {target} at start-up)", config.plan)

    def test_port_zero_is_not_probed(self):
        config = build(".:0 {\n loop\n}\n")
        self.assertTrue(config.handlers[0].disabled)
        self.assertEqual((config.plan, config.services), (["loop (port 0: no probe)"], []))

    def test_probe_name(self):
        first, second, *zone = loop.probe_name("example.org.").split(".")
        self.assertEqual(zone, ["example", "org", ""])
        self.assertTrue(first.isdigit() and second.isdigit())
        self.assertNotEqual(loop.probe_name("."), loop.probe_name("."))


class RoundRobinTests(unittest.SynchronousTestCase):
    """loadbalance_test.go's rows: CNAMEs first, then the rest, addresses, MX; the input never changed."""

    ROWS = [
        (["CNAME a.", "CNAME b.", "CNAME c.", "CNAME d.", "A 10.240.0.1", "MX 1 mx1.", "MX 2 mx2.", "MX 3 mx3."],
         ["CNAME"] * 4 + ["A"] + ["MX"] * 3),
        (["A 10.240.0.1", "MX 1 mx1.", "CNAME endpoint."], ["CNAME", "A", "MX"]),
        (["MX 1 mx1.", "A 10.240.0.1", "A 10.240.0.2", "MX 1 mx2.", "CNAME cname3.", "A 10.240.0.3", "MX 1 mx3."],
         ["CNAME", "A", "A", "A", "MX", "MX", "MX"]),
        (["A 10.240.0.1", "AAAA ::1", "MX 1 mx1.", "CNAME cname3.", "TXT x", "A 10.240.0.3", "AAAA ::2"],
         ["CNAME", "TXT", "*", "*", "*", "*", "MX"]),
        (["A 10.0.0.1", "A 10.0.0.2", "A 10.0.0.3"], ["A", "A", "A"]),
        (["TXT one", "TXT two"], ["TXT", "TXT"]),
    ]

    def test_order_of_kinds(self):
        for row, expected in self.ROWS:
            records = [record("x.example. " + line) for line in row]
            before = list(records)
            for _ in range(20):
                got = kinds(loadbalance.round_robin(records))
                self.assertEqual([k if e != "*" else "*" for k, e in zip(got, expected)], expected, row)
                self.assertEqual(sorted(got), sorted(kinds(records)), row)
            self.assertEqual(records, before, "the input list is left alone")

    def test_every_order_comes_up(self):
        records = [record("x.example. A " + address) for address in ADDRESSES[:3]]
        orders = {tuple(text(loadbalance.shuffled(records))) for _ in range(500)}
        self.assertEqual(len(orders), 6)

    def test_other_records_keep_their_order(self):
        records = [record(f"x.example. TXT {word}") for word in ("one", "two", "three")]
        self.assertEqual(loadbalance.round_robin(records), records)


class PreferTests(unittest.SynchronousTestCase):
    def test_sort_preferred(self):
        """prefer_test.go's TestSortPreferred: subnet by subnet, then the others; CNAME first."""
        rows = ["A 10.9.30.1", "A 10.9.20.5", "A 192.168.1.2", "A 10.10.0.1", "A 10.9.20.3", "A 172.16.0.1",
                "AAAA 2001:db8::1", "AAAA 2001:db8:abcd::1", "AAAA fd00::1", "CNAME alias.example.org."]
        subnets = tuple(loadbalance.parse_cidr(None, cidr) for cidr in ("2001:db8::/32", "10.9.20.0/24", "10.9.30.0/24"))
        got = loadbalance.prefer_subnets([record("example.org. " + row) for row in rows], subnets)
        self.assertEqual([line.split()[-1] for line in text(got)], [
            "alias.example.org.", "2001:db8::1", "2001:db8:abcd::1", "10.9.20.5", "10.9.20.3", "10.9.30.1",
            "192.168.1.2", "10.10.0.1", "172.16.0.1", "fd00::1"])


def always() -> bool:
    return True


class Asking:
    """The part of a Request loadbalance reads."""

    def __init__(self, qtype: int) -> None:
        self.qtype = qtype


class Answering:
    """A next plugin that answers C{response}."""

    def __init__(self, response: Response) -> None:
        self.response = response

    def serve(self, request) -> Response:
        return self.response


class HandlerTests(unittest.SynchronousTestCase):
    """Which answers are reordered, and which may still be replayed by the fast path."""

    def serve(self, response: Response, qtype=tdns.A, prefer=()) -> Response:
        """What loadbalance makes of C{response}, the next plugin's answer to a C{qtype} query."""
        handler = loadbalance.LoadBalance(prefer)
        handler.next = Answering(response)
        return handler.serve(Asking(qtype))

    def test_shuffled_answers_are_not_replayed(self):
        answers = [record("x.example. A " + address) for address in ADDRESSES]
        self.assertIsNone(self.serve(Response(answers=answers, valid_while=always)).valid_while)
        single = [record("x.example. CNAME y.example."), record("y.example. A 192.0.2.1")]
        self.assertIs(self.serve(Response(answers=single, valid_while=always)).valid_while, always)

    def test_errors_and_transfers_pass_untouched(self):
        answers = [record("x.example. A " + address) for address in ADDRESSES]
        failed = Response(rcode=tdns.ENAME, answers=answers)
        self.assertIs(self.serve(failed), failed)
        transfer = Response(answers=answers)
        self.assertIs(self.serve(transfer, qtype=tdns.AXFR), transfer)

    def test_response_is_not_changed_in_place(self):
        answers = [record("x.example. A " + address) for address in ADDRESSES]
        response = Response(answers=list(answers))
        for _ in range(20):
            self.serve(response)
        self.assertEqual(response.answers, answers)

    def test_prefer_after_shuffle(self):
        answers = [record("x.example. A " + address) for address in ADDRESSES]
        prefer = (loadbalance.parse_cidr(None, "192.0.2.3/32"),)
        for _ in range(20):
            first = text(self.serve(Response(answers=answers), prefer=prefer).answers)[0]
            self.assertEqual(first, "A 192.0.2.3")


class CnameUpstream(FakeUpstream):
    """A FakeUpstream that answers NAME A with C{NAME CNAME target.example.} and the target's addresses."""

    def reply_to(self, packet: bytes, transport: str) -> bytes:
        reply = dns.message.from_wire(super().reply_to(packet, transport))
        target = dns.name.from_text("target.example.")
        addresses = [dns.rrset.from_rdata_list(target, rrset.ttl, list(rrset)) for rrset in reply.answer]
        cname = dns.rrset.from_text(reply.question[0].name, 30, "IN", "CNAME", target.to_text())
        reply.answer = [cname, *addresses]
        return reply.to_wire()


def wire_answers(reply: dns.message.Message) -> list[str]:
    """The answer section in wire order, one C{TYPE RDATA} per record (parsed again with twisted.names)."""
    message = tdns.Message()
    message.fromStr(reply.to_wire())
    return text(message.answers)


class LoadBalanceThroughDaemonTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_forwarded_answers_shuffled_behind_the_cname(self):
        upstream = CnameUpstream({("www.example.org.", "A"): ADDRESSES})
        port = start_daemon(self, f""".:0 {{
    bind 127.0.0.1
    loadbalance
    forward . 127.0.0.1:{upstream.start(self)}
}}
""")
        firsts = set()
        for _ in range(QUERIES):
            reply = yield query(port, "www.example.org", "A")
            answers = wire_answers(reply)
            self.assertEqual(answers[0], "CNAME target.example", answers)
            self.assertEqual(sorted(answers[1:]), [f"A {address}" for address in ADDRESSES])
            firsts.add(answers[1])
        self.assertGreater(len(firsts), 1, "the first address never changed")
        self.assertEqual(len(upstream.queries), QUERIES)

    @defer.inlineCallbacks
    def test_replayable_answers_are_shuffled_every_time(self):
        """A stanza's answers are replayed by the fast path; reordered ones must not be, single ones still are."""
        api = start_api(self, [
            make_namespace("default"),
            make_service("default", "web", headless=True, ports=[{"name": "http", "port": 80}]),
            make_endpoint_slice("default", "web-1", "web", ports=[{"name": "http", "port": 80}],
                                endpoints=[{"addresses": [address]} for address in ADDRESSES]),
            make_service("default", "one", cluster_ips=["10.96.0.10"], ports=[{"name": "http", "port": 80}]),
        ])
        running = Running(self, f""".:0 {{
    bind 127.0.0.1
    loadbalance
    kubernetai cluster.local {{
        endpoint {api.url}
    }}
}}
""")
        port = yield running.dns_port()
        (table,) = running.dns.tables.values()
        firsts = set()
        for _ in range(QUERIES):
            reply = yield query(port, "web.default.svc.cluster.local", "A")
            answers = wire_answers(reply)
            self.assertEqual(sorted(answers), [f"A {address}" for address in ADDRESSES])
            firsts.add(answers[0])
        self.assertGreater(len(firsts), 1, "the same order was replayed")
        self.assertEqual(table.ready_replies, {})
        for _ in range(2):
            reply = yield query(port, "one.default.svc.cluster.local", "A")
            self.assertEqual(wire_answers(reply), ["A 10.96.0.10"])
        self.assertEqual(len(table.ready_replies), 1, "a single address is still replayed")


class LoopTests(unittest.TestCase):
    """A daemon that forwards to itself, with the halt recorded instead of exiting the test runner."""

    def start(self, corefile: str):
        """Build and start the daemon of C{corefile}; its loop handler and probe, and the Deferred its halt fires."""
        daemon = build_daemon(write_corefile(self, corefile))
        config = daemon.configs[0]
        (handler,) = [h for h in config.handlers if isinstance(h, loop.Loop)]
        (probe,) = [s for s in config.services if isinstance(s, loop.LoopProbe)]
        halted = defer.Deferred()
        handler.halt = lambda: halted.callback(None)
        root = daemon.service(reactor)
        root.startService()
        self.addCleanup(root.stopService)
        return handler, probe, halted

    @defer.inlineCallbacks
    def probe_done(self, probe: loop.LoopProbe):
        """Wait until the probe was answered (or given up) and its exchange finished."""
        while not (probe.handler.disabled and probe.in_flight is not None and probe.in_flight.called):
            yield task.deferLater(reactor, 0.05, lambda: None)

    @defer.inlineCallbacks
    def test_forwarding_to_itself_is_detected(self):
        logs = capture_logs(self)
        port = free_port()
        handler, probe, halted = self.start(f""".:{port} {{
    bind 127.0.0.1
    loop
    forward . 127.0.0.1:{port}
}}
""")
        yield halted
        yield self.probe_done(probe)
        (message,) = [line for line in logs if line.startswith("Loop (")]
        self.assertRegex(message, rf'^Loop \(127\.0\.0\.1:\d+ -> 127\.0\.0\.1:{port}\) detected for zone "\.", '
                                  r"see https://coredns\.io/plugins/loop#troubleshooting\. "
                                  f'Query: "HINFO {re.escape(handler.qname)}"$')
        self.assertEqual(handler.seen, 3)

    @defer.inlineCallbacks
    def test_no_loop_probes_once_and_passes_queries_on(self):
        logs = capture_logs(self)
        upstream = FakeUpstream({("www.example.org.", "A"): ["192.0.2.1"]})
        port = free_port()
        handler, probe, halted = self.start(f""".:{port} {{
    bind 127.0.0.1
    loop
    forward . 127.0.0.1:{upstream.start(self)}
}}
""")
        yield self.probe_done(probe)
        self.assertEqual(upstream.queries, [(handler.qname, "HINFO", "udp")])
        self.assertEqual((handler.seen, halted.called), (1, False))
        for _ in range(3):
            yield query(port, handler.qname, "HINFO")
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual([item.address for item in reply.answer[0]], ["192.0.2.1"])
        self.assertEqual((handler.seen, halted.called), (1, False), "disabled once answered")
        self.assertFalse([line for line in logs if "Loop (" in line])


class LoopProcessTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_twistd_exits_1_with_coredns_message(self):
        port = free_port()
        path = write_corefile(self, f".:{port} {{\n    bind 127.0.0.1\n    loop\n    forward . 127.0.0.1:{port}\n}}\n")
        result = yield twistd("-n", "--pidfile=", "--logger", "kubernetai.logs.observer", "kubernetai", "-c", path)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertRegex(result.stdout, rf'\[FATAL\] plugin/loop: Loop \(127\.0\.0\.1:\d+ -> 127\.0\.0\.1:{port}\) '
                                        r'detected for zone "\."')
