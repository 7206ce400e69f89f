"""
Denials answered alike (kubernetai.alike), through a running daemon on a
test API server: the reply a name gets from another name's denial is the
very reply the chain gives it (asked over TCP, which always runs the chain),
for every name form, case, length, query type and EDNS shape; names the
stanza holds, or cannot vouch for, still run the chain; a change in the
cluster, fallthrough between stanzas, the plugins before the stanzas, the
cache's and prometheus's counts, and the bound on what is kept.
"""

import socket
import struct

import dns.message
import dns.rdatatype
from twisted.internet import defer
from twisted.internet.threads import deferToThread

from kubernetai.plugins.cache import Cache
from tests.support import send_raw_udp, wait_until
from tests.test_health_ready import Running
from tests.test_kubernetes_stanza import StanzaTestCase, cluster_a, cluster_west, stanza_block
from tests.test_prometheus import scrape, value

DENIED = [
    "nx.default.svc.cluster.local",
    "a.default.svc.cluster.local",
    "a-name-a-good-deal-longer-than-the-first-one-asked.default.svc.cluster.local",
    "NX.Default.svc.cluster.local",
    "web.nowhere.svc.cluster.local",
    "nowhere.svc.cluster.local",
    "endpoint.nx.default.svc.cluster.local",
    "_http._tcp.nx.default.svc.cluster.local",
    "x.y.z.w.v.nx.default.svc.cluster.local",
    "api.default.svc.cluster.local.svc.cluster.local",
    "www.example.org.default.svc.cluster.local",
    "www.example.org.svc.cluster.local",
    "www.example.org.cluster.local",
    "nothing.cluster.local",
    "version.dnsx.cluster.local",
]
# Names the stanza holds, or whose denial depends on more than the name's service and namespace.
NOT_ALIKE = [
    "web.default.svc.cluster.local",
    "db-0.db.default.svc.cluster.local",
    "10-1-0-3.db.default.svc.cluster.local",
    "default.svc.cluster.local",
    "nx.default.svc.CLUSTER.local",
    "1-2-3-4.default.pod.cluster.local",
    "dns-version.cluster.local",
    "ns.dns.cluster.local",
    "dns.cluster.local",
    "version.dns.cluster.local",
    "x.hostmaster.cluster.local",
    "svc.cluster.local",
    "pod.cluster.local",
    "default.pod.cluster.local",
    "cluster.local",
]
TYPES = ["A", "AAAA", "SRV", "TXT", "MX", "NS", "PTR", "CNAME", "ANY"]


def wire(name: str, rdtype: str = "A", query_id: int = 1234, **edns) -> bytes:
    message = dns.message.make_query(name, rdtype, **edns)
    message.id = query_id
    return message.to_wire()


def send_raw_tcp(port: int, packet: bytes):
    """Send C{packet} over TCP; a Deferred firing with the reply bytes (the chain always runs for TCP)."""

    def exchange():
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(struct.pack("!H", len(packet)) + packet)
            stream = b""
            while len(stream) < 2 or len(stream) < 2 + struct.unpack("!H", stream[:2])[0]:
                chunk = sock.recv(65535)
                if not chunk:
                    break
                stream += chunk
            return stream[2:]

    return deferToThread(exchange)


class AlikeTestCase(StanzaTestCase):
    def start_block(self, stanzas: str, before: str = "errors") -> None:
        self.running = Running(self, f".:0 {{\n    bind 127.0.0.1\n    {before}\n{stanzas}}}\n")

    @defer.inlineCallbacks
    def table(self):
        self.port = yield self.running.dns_port()
        (table,) = self.running.dns.tables.values()
        return table

    @defer.inlineCallbacks
    def chain_reply(self, packet: bytes) -> bytes:
        """The reply the chain gives C{packet} (over TCP), which the same asked first over UDP must match."""
        by_udp = yield send_raw_udp(self.port, packet)
        by_tcp = yield send_raw_tcp(self.port, packet)
        self.assertEqual(by_udp, by_tcp, dns.message.from_wire(packet).question)
        return by_tcp


class OneStanzaTests(AlikeTestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.api = self.start_api(cluster_a)
        self.start_block(stanza_block("cluster.local in-addr.arpa", self.api))
        self.zone_table = yield self.table()

    @defer.inlineCallbacks
    def test_every_denied_name_gets_the_reply_the_chain_gives(self):
        for rdtype in TYPES:
            first = yield self.chain_reply(wire("first.default.svc.cluster.local", rdtype))
            for number, name in enumerate(DENIED):
                packet = wire(name, rdtype, query_id=number)
                expected = yield self.chain_reply(packet)
                self.assertEqual(dns.message.from_wire(expected).rcode(), dns.rcode.NXDOMAIN, name)
                alike = self.zone_table.alike_reply(packet)
                self.assertIsNotNone(alike, f"{name} {rdtype}")
                reply, _, grown = alike
                self.assertEqual(reply, expected, f"{name} {rdtype}")
                self.assertEqual(grown, len(expected) - len(first), name)

    @defer.inlineCallbacks
    def test_names_it_holds_or_cannot_vouch_for_run_the_chain(self):
        yield self.chain_reply(wire("first.default.svc.cluster.local"))
        self.assertEqual(len(self.zone_table.alike_templates), 1)
        for name in NOT_ALIKE:
            packet = wire(name)
            yield self.chain_reply(packet)
            self.assertIsNone(self.zone_table.alike_reply(packet), name)

    @defer.inlineCallbacks
    def test_a_name_past_255_octets_is_formerr(self):
        yield self.chain_reply(wire("first.default.svc.cluster.local"))
        labels = [b"x" * 63] * 3 + [b"y" * 36, b"default", b"svc", b"cluster", b"local"]
        name = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
        self.assertEqual(len(name), 256)
        packet = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)
        self.assertIsNone(self.zone_table.alike_reply(packet))
        reply = yield send_raw_udp(self.port, packet)
        self.assertEqual(reply[3] & 0xF, dns.rcode.FORMERR)

    @defer.inlineCallbacks
    def test_soa_of_a_denied_name_is_nodata_and_never_kept(self):
        reply = yield self.chain_reply(wire("nx.default.svc.cluster.local", "SOA"))
        self.assertEqual(dns.message.from_wire(reply).rcode(), dns.rcode.NOERROR)
        self.assertEqual(self.zone_table.alike_templates, {})

    @defer.inlineCallbacks
    def test_each_edns_shape_has_its_own(self):
        shapes = [{}, {"use_edns": 0, "payload": 1232}, {"use_edns": 0, "payload": 4096, "want_dnssec": True}]
        for shape in shapes:
            yield self.chain_reply(wire("first.default.svc.cluster.local", **shape))
        self.assertEqual(len(self.zone_table.alike_templates), 3)
        for shape in shapes:
            packet = wire("second-name.default.svc.cluster.local", query_id=77, **shape)
            expected = yield self.chain_reply(packet)
            self.assertEqual(self.zone_table.alike_reply(packet)[0], expected, shape)

    @defer.inlineCallbacks
    def test_a_change_in_the_cluster_is_answered_at_once(self):
        yield self.chain_reply(wire("first.default.svc.cluster.local"))
        before = yield self.chain_reply(wire("new.default.svc.cluster.local"))
        self.assertEqual(dns.message.from_wire(before).rcode(), dns.rcode.NXDOMAIN)
        self.api.service("default", "new", cluster_ips=["10.0.0.99"])
        packet = wire("new.default.svc.cluster.local", query_id=9)
        yield wait_until(lambda: self.zone_table.alike_reply(packet) is None, "the new service seen")
        after = yield self.chain_reply(packet)
        self.assertEqual([item.to_text() for rrset in dns.message.from_wire(after).answer for item in rrset],
                         ["10.0.0.99"])
        # The zone's SOA serial changed with the data: denials are made anew, with the new serial.
        denied = wire("other.default.svc.cluster.local", query_id=10)
        self.assertIsNone(self.zone_table.alike_reply(denied))
        yield self.chain_reply(denied)
        again = wire("yet-another.default.svc.cluster.local", query_id=11)
        expected = yield self.chain_reply(again)
        self.assertEqual(self.zone_table.alike_reply(again)[0], expected)

    @defer.inlineCallbacks
    def test_what_is_kept_is_bounded(self):
        self.zone_table.alike_limit = 4
        for payload in range(1300, 1310):
            yield self.chain_reply(wire("first.default.svc.cluster.local", use_edns=0, payload=payload))
            self.assertLessEqual(len(self.zone_table.alike_templates), 4)
        self.assertGreater(len(self.zone_table.alike_templates), 0)


class FallthroughTests(AlikeTestCase):
    """Two stanzas on cluster.local, the first falling through: a name is denied alike only if both deny it."""

    @defer.inlineCallbacks
    def setUp(self):
        east, west = self.start_api(cluster_a), self.start_api(cluster_west)
        self.start_block(stanza_block("cluster.local", east, "fallthrough") + stanza_block("cluster.local", west))
        self.zone_table = yield self.table()

    @defer.inlineCallbacks
    def test_denied_by_both(self):
        yield self.chain_reply(wire("first.default.svc.cluster.local"))
        packet = wire("second.default.svc.cluster.local")
        expected = yield self.chain_reply(packet)
        self.assertEqual(self.zone_table.alike_reply(packet)[0], expected)
        for name, address in [("west-only.default.svc.cluster.local", "10.9.0.1"),
                              ("web.default.svc.cluster.local", "10.0.0.10")]:
            packet = wire(name)
            self.assertIsNone(self.zone_table.alike_reply(packet), name)
            reply = yield self.chain_reply(packet)
            self.assertIn(address, [item.to_text() for rrset in dns.message.from_wire(reply).answer for item in rrset])

    @defer.inlineCallbacks
    def test_a_namespace_the_first_holds(self):
        yield self.chain_reply(wire("first.default.svc.cluster.local"))
        packet = wire("other.svc.cluster.local")
        self.assertIsNone(self.zone_table.alike_reply(packet), "east holds namespace other")


class PluginsBeforeTests(AlikeTestCase):
    """Only the plugins that say they treat a zone's names alike may run before a stanza whose denials are kept."""

    @defer.inlineCallbacks
    def check_kept(self, before: str, kept: bool):
        api = self.start_api(cluster_a)
        self.start_block(stanza_block("cluster.local", api), before)
        self.zone_table = yield self.table()
        yield self.chain_reply(wire("first.default.svc.cluster.local"))
        self.assertEqual(bool(self.zone_table.alike_templates), kept, before)

    def test_errors_loadbalance_prometheus_and_cache(self):
        return self.check_kept("errors\n    loadbalance\n    prometheus 127.0.0.1:0\n    cache 30", True)

    def test_k8s_external_of_another_zone(self):
        return self.check_kept("k8s_external example.com", True)

    def test_k8s_external_of_the_root(self):
        return self.check_kept("k8s_external .", False)

    def test_log(self):
        return self.check_kept("log", False)

    def test_hosts(self):
        return self.check_kept("hosts {\n        10.0.0.1 first.default.svc.cluster.local\n        fallthrough\n    }",
                               False)

    def test_rewrite(self):
        return self.check_kept("rewrite name exact first.default.svc.cluster.local web.default.svc.cluster.local",
                               False)

    def test_a_cache_of_another_zone(self):
        return self.check_kept("cache 30 default.svc.cluster.local", False)


class CountsTests(AlikeTestCase):
    """What prometheus and the cache count for denials given alike: what the chain would have made them count."""

    @defer.inlineCallbacks
    def test_counted_as_the_chain_counts_them(self):
        api = self.start_api(cluster_a)
        self.start_block(stanza_block("cluster.local", api), "prometheus 127.0.0.1:0\n    cache 30")
        zone_table = yield self.table()
        (cache,) = [handler for config in self.running.daemon.configs for handler in config.handlers
                    if isinstance(handler, Cache)]
        names = ["first.default.svc.cluster.local", "b.default.svc.cluster.local",
                 "a-longer-name.default.svc.cluster.local", "c.nowhere.svc.cluster.local"]
        sizes = []
        for name in names:
            packet = wire(name)
            sizes.append((len(packet), len((yield send_raw_udp(self.port, packet)))))
        self.assertEqual(len(zone_table.alike_templates), 1)
        self.assertEqual((cache.requests, cache.misses), (4, 4))
        self.assertEqual(cache.entries["denial"], 1, "denials given alike are not stored")
        samples = yield scrape(self.running)
        common = {"server": f"dns://127.0.0.1:{self.port}", "zone": ".", "view": ""}
        self.assertEqual(value(samples, "coredns_dns_responses_total", rcode="NXDOMAIN", **common), 4)
        self.assertEqual(value(samples, "coredns_dns_request_size_bytes_sum", proto="udp", **common),
                         sum(query for query, _ in sizes))
        self.assertEqual(value(samples, "coredns_dns_response_size_bytes_sum", proto="udp", **common),
                         sum(reply for _, reply in sizes))
