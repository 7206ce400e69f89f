"""
kubernetai stanzas end to end: a running daemon, real DNS over UDP, and
test API servers that the real kubernetes client syncs from.  One stanza's
answers, several stanzas and fallthrough, start-up and outages, a stanza
used on its own as a twisted.names resolver, and what stanzas are called.
"""

import dataclasses

import dns.flags
import dns.message
import dns.rdatatype
import dns.reversename
from twisted.internet import defer, reactor, task
from twisted.internet.interfaces import IResolver
from twisted.names import dns as tdns
from twisted.names import error as names_error
from twisted.names.resolve import ResolverChain
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from kubernetai.chain import Request
from kubernetai.corefile import CorefileError
from kubernetai.daemon import build_daemon
from kubernetai.plugins.kubernetai import complete, wait_for_sync
from kubernetai.kubernetes.connection import ConnectionSetupError
from kubernetai.kubernetes.stanza import (
    Stanza,
    StanzaFallthrough,
    StanzaNameError,
    StanzaResolver,
    parse_stanza_text,
    start_resolver,
)
from kubernetai.apiserver.server import ApiServer
from kubernetai.zones import Fallthrough
from tests.support import (
    FakeUpstream,
    build,
    capture_logs,
    query,
    rcode_of,
    send_raw_udp,
    start_daemon_listening,
    write_corefile,
)


def texts(section):
    """A reply section as sorted zone-file lines without TTLs."""
    lines = []
    for rrset in section:
        for item in rrset:
            lines.append(f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {item.to_text()}")
    return sorted(lines)


def cluster_a(api: ApiServer) -> None:
    api.namespace("default")
    api.namespace("other")
    api.service("default", "web", cluster_ips=["10.0.0.10", "fd00::10"], ports=[{"name": "http", "port": 80}])
    api.service("default", "db", headless=True, ports=[{"name": "pg", "port": 5432}])
    api.endpoint_slice("default", "db-1", "db", ports=[{"name": "pg", "port": 5432}], endpoints=[
        {"addresses": ["10.1.0.1"], "hostname": "db-0"},
        {"addresses": ["10.1.0.2"]},
        {"addresses": ["10.1.0.3"], "ready": False},
    ])
    api.service("default", "ext", type="ExternalName", external_name="web.default.svc.cluster.local")
    api.service("other", "api", cluster_ips=["10.0.0.20"], ports=[{"name": "https", "port": 443}])
    api.service("default", "outside", type="ExternalName", external_name="www.example.org")
    api.service("default", "nowhere", type="ExternalName", external_name="nothing.example.org")


def cluster_west(api: ApiServer) -> None:
    api.namespace("default")
    api.service("default", "west-only", cluster_ips=["10.9.0.1"], ports=[{"name": "http", "port": 80}])


def stanza_block(zone: str, api: ApiServer, extra: str = "") -> str:
    return f"""    kubernetai {zone} {{
        endpoint {api.url}
        {extra}
    }}
"""


class StanzaTestCase(unittest.TestCase):
    def start_api(self, populate=None) -> ApiServer:
        api = ApiServer()
        api.start()
        self.addCleanup(api.stop)
        if populate is not None:
            populate(api)
        return api

    def start(self, stanzas: str, after: str = ""):
        return start_daemon_listening(self, f".:0 {{\n    bind 127.0.0.1\n{stanzas}    {after}\n}}\n")


class OneStanzaTests(StanzaTestCase):
    @defer.inlineCallbacks
    def setUp(self):
        api = self.start_api(cluster_a)
        self.port = yield self.start(stanza_block("cluster.local in-addr.arpa ip6.arpa", api))

    @defer.inlineCallbacks
    def test_cluster_ip(self):
        a = yield query(self.port, "web.default.svc.cluster.local", "A")
        aaaa = yield query(self.port, "web.default.svc.cluster.local", "AAAA")
        self.assertEqual(texts(a.answer), ["web.default.svc.cluster.local. A 10.0.0.10"])
        self.assertEqual(texts(aaaa.answer), ["web.default.svc.cluster.local. AAAA fd00::10"])
        self.assertTrue(a.flags & dns.flags.AA)
        self.assertEqual(a.answer[0].ttl, 5)

    @defer.inlineCallbacks
    def test_headless_gives_ready_endpoints(self):
        reply = yield query(self.port, "db.default.svc.cluster.local", "A")
        self.assertEqual(texts(reply.answer), ["db.default.svc.cluster.local. A 10.1.0.1",
                                               "db.default.svc.cluster.local. A 10.1.0.2"])

    @defer.inlineCallbacks
    def test_endpoint_names(self):
        by_hostname = yield query(self.port, "db-0.db.default.svc.cluster.local", "A")
        by_dashed_ip = yield query(self.port, "10-1-0-2.db.default.svc.cluster.local", "A")
        not_ready = yield query(self.port, "10-1-0-3.db.default.svc.cluster.local", "A")
        self.assertEqual(texts(by_hostname.answer), ["db-0.db.default.svc.cluster.local. A 10.1.0.1"])
        self.assertEqual(texts(by_dashed_ip.answer), ["10-1-0-2.db.default.svc.cluster.local. A 10.1.0.2"])
        self.assertEqual(rcode_of(not_ready), "NXDOMAIN")

    @defer.inlineCallbacks
    def test_srv_headless_with_additional_addresses(self):
        reply = yield query(self.port, "_pg._tcp.db.default.svc.cluster.local", "SRV")
        self.assertEqual(texts(reply.answer), [
            "_pg._tcp.db.default.svc.cluster.local. SRV 0 50 5432 10-1-0-2.db.default.svc.cluster.local.",
            "_pg._tcp.db.default.svc.cluster.local. SRV 0 50 5432 db-0.db.default.svc.cluster.local.",
        ])
        self.assertEqual(texts(reply.additional), ["10-1-0-2.db.default.svc.cluster.local. A 10.1.0.2",
                                                   "db-0.db.default.svc.cluster.local. A 10.1.0.1"])

    @defer.inlineCallbacks
    def test_external_name_in_zone_is_followed(self):
        reply = yield query(self.port, "ext.default.svc.cluster.local", "A")
        self.assertEqual(texts(reply.answer), [
            "ext.default.svc.cluster.local. CNAME web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. A 10.0.0.10",
        ])

    @defer.inlineCallbacks
    def test_ptr_for_service_and_endpoint(self):
        service = yield query(self.port, "10.0.0.10.in-addr.arpa", "PTR")
        endpoint = yield query(self.port, "1.0.1.10.in-addr.arpa", "PTR")
        v6 = yield query(self.port, dns.reversename.from_address("fd00::10").to_text(), "PTR")
        self.assertEqual([item.to_text() for item in service.answer[0]], ["web.default.svc.cluster.local."])
        self.assertEqual([item.to_text() for item in endpoint.answer[0]], ["db-0.db.default.svc.cluster.local."])
        self.assertEqual([item.to_text() for item in v6.answer[0]], ["web.default.svc.cluster.local."])

    @defer.inlineCallbacks
    def test_nxdomain_and_nodata_carry_the_soa(self):
        missing = yield query(self.port, "missing.default.svc.cluster.local", "A")
        nodata = yield query(self.port, "web.default.svc.cluster.local", "MX")
        for reply, rcode in ((missing, "NXDOMAIN"), (nodata, "NOERROR")):
            self.assertEqual(rcode_of(reply), rcode)
            self.assertEqual(reply.answer, [])
            (soa,) = reply.authority
            self.assertEqual(soa.name.to_text(), "cluster.local.")
            self.assertEqual(soa[0].mname.to_text(), "ns.dns.cluster.local.")
            self.assertEqual(soa[0].rname.to_text(), "hostmaster.cluster.local.")
            self.assertEqual(soa[0].minimum, 5)

    @defer.inlineCallbacks
    def test_apex_and_dns_version(self):
        version = yield query(self.port, "dns-version.cluster.local", "TXT")
        soa = yield query(self.port, "cluster.local", "SOA")
        ns = yield query(self.port, "cluster.local", "NS")
        self.assertEqual(texts(version.answer), ['dns-version.cluster.local. TXT "1.1.0"'])
        self.assertEqual(soa.answer[0].rdtype, dns.rdatatype.SOA)
        self.assertEqual(texts(ns.answer), ["cluster.local. NS ns.dns.cluster.local."])
        self.assertEqual(texts(ns.additional), ["ns.dns.cluster.local. A 127.0.0.1"])

    @defer.inlineCallbacks
    def test_case_of_the_question_is_echoed(self):
        reply = yield query(self.port, "Web.Default.SVC.Cluster.Local", "A")
        self.assertEqual(texts(reply.answer), ["Web.Default.SVC.Cluster.Local. A 10.0.0.10"])


class SeveralStanzaTests(StanzaTestCase):
    """Stanzas in Corefile order, fallthrough between them and to the next plugin."""

    def setUp(self):
        self.east = self.start_api(cluster_a)
        self.west = self.start_api(cluster_west)
        self.upstream = FakeUpstream({("www.example.org.", "A"): ["192.0.2.1"]})
        self.forward = f"forward . 127.0.0.1:{self.upstream.start(self)}"

    @defer.inlineCallbacks
    def test_different_zones(self):
        port = yield self.start(stanza_block("cluster.local", self.east) + stanza_block("west.local", self.west))
        east = yield query(port, "web.default.svc.cluster.local", "A")
        west = yield query(port, "west-only.default.svc.west.local", "A")
        self.assertEqual(texts(east.answer), ["web.default.svc.cluster.local. A 10.0.0.10"])
        self.assertEqual(texts(west.answer), ["west-only.default.svc.west.local. A 10.9.0.1"])

    @defer.inlineCallbacks
    def test_same_zone_first_exposes_default_and_falls_through(self):
        stanzas = (stanza_block("cluster.local", self.east, "namespaces default\n        fallthrough")
                   + stanza_block("cluster.local", self.west))
        port = yield self.start(stanzas, self.forward)
        first = yield query(port, "web.default.svc.cluster.local", "A")
        second = yield query(port, "west-only.default.svc.cluster.local", "A")
        hidden_by_first = yield query(port, "api.other.svc.cluster.local", "A")
        self.assertEqual(texts(first.answer), ["web.default.svc.cluster.local. A 10.0.0.10"])
        self.assertEqual(texts(second.answer), ["west-only.default.svc.cluster.local. A 10.9.0.1"])
        self.assertEqual(rcode_of(hidden_by_first), "NXDOMAIN", "the second stanza has no other/api")
        self.assertEqual(self.upstream.queries, [], "the last stanza has no fallthrough")

    @defer.inlineCallbacks
    def test_last_stanza_falls_through_to_forward(self):
        port = yield self.start(stanza_block("cluster.local", self.east, "fallthrough"), self.forward)
        reply = yield query(port, "nothing.default.svc.cluster.local", "A")
        self.assertEqual(rcode_of(reply), "NXDOMAIN")
        self.assertEqual(self.upstream.queries, [("nothing.default.svc.cluster.local.", "A", "udp")])

    @defer.inlineCallbacks
    def test_fallthrough_zones_limit_what_falls(self):
        block = stanza_block("cluster.local in-addr.arpa", self.east, "fallthrough in-addr.arpa")
        port = yield self.start(block, self.forward)
        yield query(port, "nothing.default.svc.cluster.local", "A")
        yield query(port, "9.9.9.10.in-addr.arpa", "PTR")
        self.assertEqual(self.upstream.queries, [("9.9.9.10.in-addr.arpa.", "PTR", "udp")])

    @defer.inlineCallbacks
    def test_external_name_outside_the_zones_resolved_through_the_server(self):
        port = yield self.start(stanza_block("cluster.local", self.east), self.forward)
        reply = yield query(port, "outside.default.svc.cluster.local", "A")
        self.assertEqual(texts(reply.answer), ["outside.default.svc.cluster.local. CNAME www.example.org.",
                                               "www.example.org. A 192.0.2.1"])
        self.assertEqual(self.upstream.queries, [("www.example.org.", "A", "udp")])

    @defer.inlineCallbacks
    def test_external_name_with_nothing_to_resolve_it_is_the_cname_alone(self):
        port = yield self.start(stanza_block("cluster.local", self.east))
        reply = yield query(port, "outside.default.svc.cluster.local", "A")
        self.assertEqual(texts(reply.answer), ["outside.default.svc.cluster.local. CNAME www.example.org."])

    @defer.inlineCallbacks
    def test_external_name_whose_target_does_not_exist_keeps_the_cname(self):
        port = yield self.start(stanza_block("cluster.local", self.east), self.forward)
        reply = yield query(port, "nowhere.default.svc.cluster.local", "A")
        self.assertEqual(texts(reply.answer), ["nowhere.default.svc.cluster.local. CNAME nothing.example.org."])

    @defer.inlineCallbacks
    def test_nodata_does_not_fall_through(self):
        port = yield self.start(stanza_block("cluster.local", self.east, "fallthrough"), self.forward)
        reply = yield query(port, "web.default.svc.cluster.local", "MX")
        self.assertEqual((rcode_of(reply), reply.answer), ("NOERROR", []))
        self.assertEqual(self.upstream.queries, [])

    @defer.inlineCallbacks
    def test_fallthrough_with_nothing_after_keeps_the_nxdomain(self):
        port = yield self.start(stanza_block("cluster.local", self.east, "fallthrough"))
        reply = yield query(port, "nothing.default.svc.cluster.local", "A")
        self.assertEqual(rcode_of(reply), "NXDOMAIN")
        self.assertEqual(reply.authority[0].name.to_text(), "cluster.local.")


class StartupAndOutageTests(StanzaTestCase):
    @defer.inlineCallbacks
    def test_servfail_until_synced_then_answers(self):
        api = self.start_api(cluster_a)
        yield api.go_down()
        port = yield self.start(stanza_block("cluster.local", api, "startup_timeout 200ms"))
        before = yield query(port, "web.default.svc.cluster.local", "A")
        self.assertEqual(rcode_of(before), "SERVFAIL")
        api.come_back()
        yield wait_for_answer(port, "web.default.svc.cluster.local")
        after = yield query(port, "web.default.svc.cluster.local", "A")
        self.assertEqual(texts(after.answer), ["web.default.svc.cluster.local. A 10.0.0.10"])

    @defer.inlineCallbacks
    def test_synced_data_serves_through_an_outage(self):
        api = self.start_api(cluster_a)
        port = yield self.start(stanza_block("cluster.local", api))
        yield api.go_down()
        for _ in range(3):
            reply = yield query(port, "web.default.svc.cluster.local", "A")
            self.assertEqual(texts(reply.answer), ["web.default.svc.cluster.local. A 10.0.0.10"])

    @defer.inlineCallbacks
    def test_changes_reach_answers(self):
        api = self.start_api(cluster_a)
        port = yield self.start(stanza_block("cluster.local", api))
        api.service("default", "web", cluster_ips=["10.0.0.99"], ports=[{"name": "http", "port": 80}])
        reply = yield wait_for_answer(port, "web.default.svc.cluster.local", "10.0.0.99")
        self.assertEqual(texts(reply.answer), ["web.default.svc.cluster.local. A 10.0.0.99"])


class FastPathTests(StanzaTestCase):
    """A repeated UDP query answered from kept reply bytes: the same bytes the chain gives, never stale."""

    @defer.inlineCallbacks
    def test_repeated_query_gets_the_same_bytes_and_sees_changes(self):
        api = self.start_api(cluster_a)
        port = yield self.start(stanza_block("cluster.local", api))
        packet = dns.message.make_query("Web.Default.svc.cluster.local", "A", use_edns=0, payload=1232).to_wire()
        first = yield send_raw_udp(port, packet)
        second = yield send_raw_udp(port, b"\x12\x34" + packet[2:])
        self.assertEqual(second[:2], b"\x12\x34")
        self.assertEqual(first[2:], second[2:])
        self.assertEqual(dns.message.from_wire(second).answer[0].name.to_text(), "Web.Default.svc.cluster.local.")
        api.service("default", "web", cluster_ips=["10.0.0.77"], ports=[{"name": "http", "port": 80}])
        for _ in range(100):
            reply = yield send_raw_udp(port, packet)
            if "10.0.0.77" in dns.message.from_wire(reply).answer[0].to_text():
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual([item.address for item in dns.message.from_wire(reply).answer[0]], ["10.0.0.77"])

    @defer.inlineCallbacks
    def test_not_kept_when_a_plugin_watches_every_reply(self):
        api = self.start_api(cluster_a)
        logs = capture_logs(self)
        port = yield self.start(stanza_block("cluster.local", api), "log")
        for _ in range(3):
            yield query(port, "web.default.svc.cluster.local", "A")
        self.assertEqual(len([line for line in logs if '"A IN web.default.svc.cluster.local.' in line]), 3)


class FailoverTests(StanzaTestCase):
    """Ours: with failover, a stanza that has not synced, or has been stale too long, lets the next answer."""

    def setUp(self):
        self.backup = self.start_api(cluster_a)

    @defer.inlineCallbacks
    def test_unsynced_stanza_hands_on(self):
        dead = "    kubernetai cluster.local {\n        endpoint http://127.0.0.1:1\n        startup_timeout 100ms\n" \
               "        failover\n    }\n"
        port = yield self.start(dead + stanza_block("cluster.local", self.backup))
        reply = yield query(port, "web.default.svc.cluster.local", "A")
        self.assertEqual(texts(reply.answer), ["web.default.svc.cluster.local. A 10.0.0.10"])

    @defer.inlineCallbacks
    def test_a_stanza_that_syncs_late_takes_over_from_the_next(self):
        primary = self.start_api(cluster_west)
        primary.service("default", "web", cluster_ips=["10.9.9.9"], ports=[{"name": "http", "port": 80}])
        yield primary.go_down()
        port = yield self.start(stanza_block("cluster.local", primary, "failover\n        startup_timeout 100ms")
                                + stanza_block("cluster.local", self.backup))
        for _ in range(2):
            reply = yield query(port, "web.default.svc.cluster.local", "A")
            self.assertEqual(texts(reply.answer), ["web.default.svc.cluster.local. A 10.0.0.10"])
        primary.come_back()
        reply = yield wait_for_answer(port, "web.default.svc.cluster.local", "10.9.9.9")
        self.assertEqual(texts(reply.answer), ["web.default.svc.cluster.local. A 10.9.9.9"])

    @defer.inlineCallbacks
    def test_without_failover_unsynced_is_servfail(self):
        dead = "    kubernetai cluster.local {\n        endpoint http://127.0.0.1:1\n        startup_timeout 100ms\n    }\n"
        port = yield self.start(dead + stanza_block("cluster.local", self.backup))
        reply = yield query(port, "web.default.svc.cluster.local", "A")
        self.assertEqual(rcode_of(reply), "SERVFAIL")

    @defer.inlineCallbacks
    def test_stale_stanza_hands_on_after_the_duration(self):
        primary = self.start_api(cluster_west)
        primary.service("default", "web", cluster_ips=["10.9.9.9"], ports=[{"name": "http", "port": 80}])
        port = yield self.start(stanza_block("cluster.local", primary, "failover 300ms")
                                + stanza_block("cluster.local", self.backup))
        before = yield query(port, "web.default.svc.cluster.local", "A")
        self.assertEqual(texts(before.answer), ["web.default.svc.cluster.local. A 10.9.9.9"])
        yield primary.go_down()
        reply = yield wait_for_answer(port, "web.default.svc.cluster.local", "10.0.0.10")
        self.assertEqual(texts(reply.answer), ["web.default.svc.cluster.local. A 10.0.0.10"])


@defer.inlineCallbacks
def wait_for_answer(port, name, address=None, attempts=100):
    """Ask until C{name} answers (with C{address}, when given)."""
    for _ in range(attempts):
        reply = yield query(port, name, "A")
        found = [item.address for rrset in reply.answer for item in rrset]
        if found and (address is None or address in found):
            return reply
        yield task.deferLater(reactor, 0.1, lambda: None)
    raise AssertionError(f"{name} never answered {address or ''}")


class ResolverTests(StanzaTestCase):
    """A stanza on its own, as a twisted.names IResolver."""

    @defer.inlineCallbacks
    def setUp(self):
        self.api = self.start_api(cluster_a)
        self.resolver = start_resolver(f"kubernetai cluster.local in-addr.arpa {{\n    endpoint {self.api.url}\n}}\n",
                                       addresses=("10.9.8.7",))
        self.addCleanup(self.resolver.stop)
        yield self.resolver.when_synced()
        self.stanza = self.resolver.stanza

    def test_provides_iresolver(self):
        self.assertTrue(verifyObject(IResolver, self.resolver))

    @defer.inlineCallbacks
    def test_lookup_address(self):
        answers, authority, additional = yield self.resolver.lookupAddress(b"web.default.svc.cluster.local")
        self.assertEqual([record.payload.dottedQuad() for record in answers], ["10.0.0.10"])
        self.assertEqual(authority, [])

    @defer.inlineCallbacks
    def test_lookup_service_and_pointer(self):
        answers, _, additional = yield self.resolver.lookupService(b"_http._tcp.web.default.svc.cluster.local")
        self.assertEqual([(r.payload.port, r.payload.target.name) for r in answers],
                         [(80, b"web.default.svc.cluster.local")])
        self.assertEqual(len(additional), 2)
        answers, _, _ = yield self.resolver.lookupPointer(b"10.0.0.10.in-addr.arpa")
        self.assertEqual([r.payload.name.name for r in answers], [b"web.default.svc.cluster.local"])

    @defer.inlineCallbacks
    def test_nxdomain_carries_the_soa(self):
        failure = yield self.assertFailure(self.resolver.lookupAddress(b"nothing.default.svc.cluster.local"),
                                           StanzaNameError)
        self.assertEqual([record.type for record in failure.authority], [tdns.SOA])

    @defer.inlineCallbacks
    def test_nodata_is_an_empty_answer_with_the_soa(self):
        answers, authority, _ = yield self.resolver.lookupMailExchange(b"web.default.svc.cluster.local")
        self.assertEqual((answers, [record.type for record in authority]), ([], [tdns.SOA]))

    @defer.inlineCallbacks
    def test_fallthrough_lets_a_resolver_chain_go_on(self):
        config = dataclasses.replace(self.stanza.config, fallthrough=Fallthrough())
        falling = StanzaResolver(Stanza("kubernetai", config, self.stanza.cluster, ()))
        yield self.assertFailure(falling.lookupAddress(b"x.default.svc.cluster.local"), StanzaFallthrough)
        chain = ResolverChain([falling, self.resolver])
        yield self.assertFailure(chain.lookupAddress(b"x.default.svc.cluster.local"), StanzaNameError)
        answers, _, _ = yield chain.lookupAddress(b"web.default.svc.cluster.local")
        self.assertEqual(len(answers), 1)

    @defer.inlineCallbacks
    def test_external_name_without_a_server_to_ask_is_nodata(self):
        message = tdns.Message()
        message.addQuery(b"outside.default.svc.cluster.local", tdns.A)
        request = Request(message.toStr(), message, ("127.0.0.1", 5353), "udp")
        response = self.stanza.answer(request.qname, request.name, tdns.A, "cluster.local.")
        self.assertEqual(response.follow, ("www.example.org.", tdns.A))
        completed = yield complete(request, response, self.stanza)
        self.assertEqual((completed.rcode, completed.answers), (tdns.OK, []))
        self.assertEqual([record.type for record in completed.authority], [tdns.SOA])

    def test_names_outside_its_zones_are_not_its_own(self):
        return self.assertFailure(self.resolver.lookupAddress(b"www.example.org"), names_error.DomainError)

    @defer.inlineCallbacks
    def test_the_nameserver_addresses_given(self):
        answers, _, _ = yield self.resolver.lookupAddress(b"ns.dns.cluster.local")
        self.assertEqual([record.payload.dottedQuad() for record in answers], ["10.9.8.7"])

    @defer.inlineCallbacks
    def test_from_its_options_and_without_zones_for_the_root(self):
        config = parse_stanza_text(f"kubernetes {{\n    endpoint {self.api.url}\n}}", "stanza")[1]
        self.assertEqual(config.zones, (".",))
        resolver = start_resolver(config)
        self.addCleanup(resolver.stop)
        yield resolver.when_synced()
        answers, _, _ = yield resolver.lookupAddress(b"api.other.svc")
        self.assertEqual([record.payload.dottedQuad() for record in answers], ["10.0.0.20"])

    def test_the_log_names_the_stanza(self):
        self.assertEqual(self.stanza.cluster.link.name, f"kubernetai #1 cluster.local. in-addr.arpa. ({self.api.url})")


class StanzaTextTests(unittest.SynchronousTestCase):
    """The text L{start_resolver} takes: one kubernetai or kubernetes directive, errors at its own lines."""

    def test_the_directive_name_and_its_options(self):
        name, config = parse_stanza_text("kubernetes cluster.local {\n    endpoint http://127.0.0.1:1\n    ttl 30\n}",
                                         "east")
        self.assertEqual((name, config.zones, config.ttl), ("kubernetes", ("cluster.local.",), 30))

    def test_a_mistake_at_its_line(self):
        with self.assertRaises(CorefileError) as raised:
            parse_stanza_text("\nkubernetai cluster.local {\n    endpoint http://127.0.0.1:1\n    ttl x\n}", "east")
        self.assertTrue(str(raised.exception).startswith("east:4: "), str(raised.exception))

    def test_another_directive_is_refused(self):
        with self.assertRaises(CorefileError) as raised:
            parse_stanza_text("forward . 127.0.0.1", "east")
        self.assertEqual(str(raised.exception), "east: expected one kubernetai or kubernetes directive, found forward")

    def test_two_stanzas_are_refused(self):
        with self.assertRaises(CorefileError) as raised:
            parse_stanza_text("kubernetai a.example\nkubernetai b.example", "east")
        self.assertEqual(str(raised.exception),
                         "east: expected one kubernetai or kubernetes directive, found kubernetai kubernetai")

    def test_no_api_server_is_refused_before_anything_starts(self):
        with self.assertRaises(ConnectionSetupError):
            start_resolver("kubernetai cluster.local {\n    kubeconfig /nonexistent/kubeconfig\n}")


class WaitForSyncTests(unittest.SynchronousTestCase):
    """The daemon waits for a stanza's first sync at most its startup_timeout, by the reactor's clock."""

    def test_waits_out_the_startup_timeout_and_says_so(self):
        stanza = build(".:53 {\n kubernetai cluster.local {\n  endpoint http://127.0.0.1:1\n  startup_timeout 2s\n }\n}\n"
                       ).handlers[0].stanzas[0]
        clock, logs = task.Clock(), capture_logs(self)
        waiting = wait_for_sync(stanza, clock)
        clock.advance(1.999)
        self.assertNoResult(waiting)
        clock.advance(0.001)
        self.assertIsNone(self.successResultOf(waiting))
        self.assertEqual(logs, ["kubernetai #1 cluster.local. (http://127.0.0.1:1): not synced after 2.0s; "
                                "serving, answering SERVFAIL until it syncs"])


class LabelTests(unittest.SynchronousTestCase):
    """Every stanza's label is unique in the daemon: its C{name}, else its place among the Corefile's
    stanzas and its zones; metrics, /ready and the logs use it."""

    def build(self, text: str):
        return build_daemon(write_corefile(self, text))

    def test_place_and_zones_across_blocks(self):
        stanza = "    kubernetai {zones} {{\n        endpoint http://127.0.0.1:1\n{extra}    }}\n"
        daemon = self.build(
            "a.example:0 {\n" + stanza.format(zones="", extra="") + stanza.format(zones="", extra="") + "}\n"
            ".:0 {\n" + stanza.format(zones="cluster.local 10.0.0.0/24", extra="        name east\n")
            + stanza.format(zones="cluster.local", extra="") + "}\n")
        self.assertEqual([stanza.label for stanza in daemon.shared.stanzas],
                         ["#1 a.example.", "#2 a.example.", "east", "#4 cluster.local."])
        self.assertEqual([name for name, _ in daemon.shared.readiness], [
            "kubernetai #1 a.example. (http://127.0.0.1:1)", "kubernetai #2 a.example. (http://127.0.0.1:1)",
            "kubernetai east (http://127.0.0.1:1)", "kubernetai #4 cluster.local. (http://127.0.0.1:1)",
        ])
        self.assertIn("    kubernetai east (http://127.0.0.1:1) for cluster.local. 0.0.10.in-addr.arpa.\n",
                      daemon.plan())

    def test_a_name_used_twice_is_refused_at_its_line(self):
        stanza = "    kubernetai {zone} {{\n        endpoint http://127.0.0.1:1\n        name east\n    }}\n"
        text = ("a.example:0 {\n" + stanza.format(zone="a.example") + "}\n"
                ".:0 {\n" + stanza.format(zone="b.example") + "}\n")
        with self.assertRaises(CorefileError) as raised:
            self.build(text)
        self.assertIn(":10: plugin/kubernetai: stanza name 'east' is already used by another stanza",
                      str(raised.exception))
