"""
merge: stanzas of one server block answering together, through a running
daemon over UDP and two test API servers, east and west.  The union of
records, NXDOMAIN only when every cluster says so, NODATA and the SOA, a
cluster not synced or failed over, fallthrough around the group, kept
replies after a change in one cluster, the cache, transfers, autopath, and
the Corefile's mistakes with their lines.
"""

import time

import dns.rdatatype
import dns.reversename
from twisted.internet import defer
from twisted.trial import unittest

from kubernetai.apiserver.server import ApiServer
from kubernetai.chain import Response
from kubernetai.kubernetes.merge import merge_replies
from kubernetai.kubernetes.records import address_record
from tests.support import build, query, rcode_of, refusal, wait_until
from tests.test_kubernetes_stanza import StanzaTestCase, texts


def east(api: ApiServer) -> None:
    api.namespace("default")
    api.service("default", "web", cluster_ips=["10.0.0.10"], ports=[{"name": "http", "port": 80}])
    api.service("default", "db", headless=True, ports=[{"name": "pg", "port": 5432}])
    api.endpoint_slice("default", "db-east", "db", ports=[{"name": "pg", "port": 5432}], endpoints=[
        {"addresses": ["10.1.0.1"], "hostname": "db-0"}, {"addresses": ["10.1.0.2"], "hostname": "db-1"}])
    api.service("default", "east-only", cluster_ips=["10.0.0.11"])
    api.service("default", "ext", type="ExternalName", external_name="web.default.svc.cluster.local")


def west(api: ApiServer) -> None:
    api.namespace("default")
    api.service("default", "web", cluster_ips=["10.9.0.10", "fd00::910"], ports=[{"name": "http", "port": 80}])
    api.service("default", "db", headless=True, ports=[{"name": "pg", "port": 5432}])
    api.endpoint_slice("default", "db-west", "db", ports=[{"name": "pg", "port": 5432}], endpoints=[
        {"addresses": ["10.1.0.2"], "hostname": "db-1"}, {"addresses": ["10.2.0.3"], "hostname": "db-2"}])
    api.service("default", "west-only", cluster_ips=["10.9.0.11"])


def stanza(api_url: str, extra: str = "", zones: str = "cluster.local in-addr.arpa") -> str:
    return f"    kubernetai {zones} {{\n        endpoint {api_url}\n        {extra}\n    }}\n"


class MergeTestCase(StanzaTestCase):
    """A daemon of stanzas and plugins (C{after}) on test API servers."""


class MergedAnswerTests(MergeTestCase):
    """east (ttl 30) and west (ttl 5) in group g: the union of their records."""

    @defer.inlineCallbacks
    def setUp(self):
        self.east, self.west = self.start_api(east), self.start_api(west)
        self.port = yield self.start(stanza(self.east.url, "merge g\n        ttl 30")
                                     + stanza(self.west.url, "merge g\n        ttl 5"))

    @defer.inlineCallbacks
    def test_cluster_ips_of_both_with_the_smallest_ttl(self):
        reply = yield query(self.port, "web.default.svc.cluster.local", "A")
        self.assertEqual(texts(reply.answer), ["web.default.svc.cluster.local. A 10.0.0.10",
                                               "web.default.svc.cluster.local. A 10.9.0.10"])
        self.assertEqual({rrset.ttl for rrset in reply.answer}, {5})

    @defer.inlineCallbacks
    def test_a_type_only_one_cluster_has(self):
        reply = yield query(self.port, "web.default.svc.cluster.local", "AAAA")
        self.assertEqual(texts(reply.answer), ["web.default.svc.cluster.local. AAAA fd00::910"])

    @defer.inlineCallbacks
    def test_headless_endpoints_each_once(self):
        reply = yield query(self.port, "db.default.svc.cluster.local", "A")
        self.assertEqual(texts(reply.answer), ["db.default.svc.cluster.local. A 10.1.0.1",
                                               "db.default.svc.cluster.local. A 10.1.0.2",
                                               "db.default.svc.cluster.local. A 10.2.0.3"])

    @defer.inlineCallbacks
    def test_srv_of_both_weighted_over_the_union(self):
        reply = yield query(self.port, "_pg._tcp.db.default.svc.cluster.local", "SRV")
        self.assertEqual(texts(reply.answer), [
            "_pg._tcp.db.default.svc.cluster.local. SRV 0 33 5432 db-0.db.default.svc.cluster.local.",
            "_pg._tcp.db.default.svc.cluster.local. SRV 0 33 5432 db-1.db.default.svc.cluster.local.",
            "_pg._tcp.db.default.svc.cluster.local. SRV 0 33 5432 db-2.db.default.svc.cluster.local."])
        self.assertEqual(texts(reply.additional), ["db-0.db.default.svc.cluster.local. A 10.1.0.1",
                                                   "db-1.db.default.svc.cluster.local. A 10.1.0.2",
                                                   "db-2.db.default.svc.cluster.local. A 10.2.0.3"])

    @defer.inlineCallbacks
    def test_names_one_cluster_holds(self):
        east_only = yield query(self.port, "east-only.default.svc.cluster.local", "A")
        west_only = yield query(self.port, "west-only.default.svc.cluster.local", "A")
        self.assertEqual(texts(east_only.answer), ["east-only.default.svc.cluster.local. A 10.0.0.11"])
        self.assertEqual(texts(west_only.answer), ["west-only.default.svc.cluster.local. A 10.9.0.11"])

    @defer.inlineCallbacks
    def test_nxdomain_when_every_cluster_says_so(self):
        reply = yield query(self.port, "nowhere.default.svc.cluster.local", "A")
        self.assertEqual(rcode_of(reply), "NXDOMAIN")
        self.assertEqual([dns.rdatatype.to_text(rrset.rdtype) for rrset in reply.authority], ["SOA"])

    @defer.inlineCallbacks
    def test_nodata_when_a_cluster_knows_the_name(self):
        reply = yield query(self.port, "east-only.default.svc.cluster.local", "AAAA")
        self.assertEqual((rcode_of(reply), reply.answer), ("NOERROR", []))
        (soa,) = reply.authority
        self.assertEqual(soa.ttl, 5)

    @defer.inlineCallbacks
    def test_soa_carries_the_latest_serial(self):
        before = yield query(self.port, "cluster.local", "SOA")
        (soa,) = before.answer
        self.assertEqual(len(soa), 1)
        # Serials are whole seconds: a change a second later in west alone must show.
        yield wait_until(lambda: _later_second(soa[0].serial), "the next second", timeout=3)
        self.west.service("default", "new", cluster_ips=["10.9.0.99"])
        yield wait_until(lambda: query(self.port, "new.default.svc.cluster.local", "A").addCallback(
            lambda reply: reply.answer != []), "west's new service")
        after = yield query(self.port, "cluster.local", "SOA")
        self.assertGreater(after.answer[0][0].serial, soa[0].serial)

    @defer.inlineCallbacks
    def test_ptr_of_either_cluster(self):
        west_ip = yield query(self.port, dns.reversename.from_address("10.9.0.10").to_text(), "PTR")
        self.assertEqual([item.to_text() for rrset in west_ip.answer for item in rrset],
                         ["web.default.svc.cluster.local."])

    @defer.inlineCallbacks
    def test_externalname_is_the_first_clusters_alone(self):
        reply = yield query(self.port, "ext.default.svc.cluster.local", "A")
        self.assertEqual(texts(reply.answer), ["ext.default.svc.cluster.local. CNAME web.default.svc.cluster.local.",
                                               "web.default.svc.cluster.local. A 10.0.0.10"])

    @defer.inlineCallbacks
    def test_kept_reply_follows_a_change_in_either_cluster(self):
        first = yield query(self.port, "db.default.svc.cluster.local", "A")
        again = yield query(self.port, "db.default.svc.cluster.local", "A")
        self.assertEqual(texts(again.answer), texts(first.answer))
        self.west.endpoint_slice("default", "db-west", "db", ports=[{"name": "pg", "port": 5432}], endpoints=[
            {"addresses": ["10.2.0.4"], "hostname": "db-3"}])

        def changed(reply):
            return texts(reply.answer) == ["db.default.svc.cluster.local. A 10.1.0.1",
                                           "db.default.svc.cluster.local. A 10.1.0.2",
                                           "db.default.svc.cluster.local. A 10.2.0.4"]

        yield wait_until(lambda: query(self.port, "db.default.svc.cluster.local", "A").addCallback(changed),
                         "the merged reply with west's new endpoints")


def _later_second(serial: int) -> bool:
    return int(time.time()) > serial


class WithoutMergeTests(MergeTestCase):
    @defer.inlineCallbacks
    def test_first_stanza_answers_alone_as_today(self):
        port = yield self.start(stanza(self.start_api(east).url) + stanza(self.start_api(west).url))
        reply = yield query(port, "web.default.svc.cluster.local", "A")
        self.assertEqual(texts(reply.answer), ["web.default.svc.cluster.local. A 10.0.0.10"])


class UnsyncedMemberTests(MergeTestCase):
    """west never syncs (nothing listens at its address)."""

    dead = "http://127.0.0.1:1"

    @defer.inlineCallbacks
    def test_the_synced_clusters_records_answer(self):
        port = yield self.start(stanza(self.start_api(east).url, "merge g")
                                + stanza(self.dead, "merge g\n        startup_timeout 100ms"))
        reply = yield query(port, "web.default.svc.cluster.local", "A")
        self.assertEqual(texts(reply.answer), ["web.default.svc.cluster.local. A 10.0.0.10"])

    @defer.inlineCallbacks
    def test_a_name_nobody_synced_holds_is_servfail(self):
        port = yield self.start(stanza(self.start_api(east).url, "merge g")
                                + stanza(self.dead, "merge g\n        startup_timeout 100ms"))
        reply = yield query(port, "west-only.default.svc.cluster.local", "A")
        self.assertEqual(rcode_of(reply), "SERVFAIL")

    @defer.inlineCallbacks
    def test_failed_over_member_leaves_nxdomain_to_the_others(self):
        port = yield self.start(stanza(self.start_api(east).url, "merge g")
                                + stanza(self.dead, "merge g\n        startup_timeout 100ms\n        failover"))
        reply = yield query(port, "west-only.default.svc.cluster.local", "A")
        self.assertEqual(rcode_of(reply), "NXDOMAIN")

    @defer.inlineCallbacks
    def test_a_group_all_failed_over_hands_on_to_the_next_stanza(self):
        third = self.start_api(west)
        port = yield self.start(stanza(self.dead, "merge g\n        startup_timeout 100ms\n        failover")
                                + stanza(self.dead, "merge g\n        startup_timeout 100ms\n        failover")
                                + stanza(third.url))
        reply = yield query(port, "west-only.default.svc.cluster.local", "A")
        self.assertEqual(texts(reply.answer), ["west-only.default.svc.cluster.local. A 10.9.0.11"])


class FallthroughTests(MergeTestCase):
    """A third cluster after the group holds C{third-only}."""

    def third(self, api: ApiServer) -> None:
        api.namespace("default")
        api.service("default", "third-only", cluster_ips=["10.7.0.1"])
        api.service("default", "web", cluster_ips=["10.7.0.10"])

    @defer.inlineCallbacks
    def test_group_falls_through_when_every_member_does(self):
        port = yield self.start(stanza(self.start_api(east).url, "merge g\n        fallthrough")
                                + stanza(self.start_api(west).url, "merge g\n        fallthrough")
                                + stanza(self.start_api(self.third).url))
        found = yield query(port, "third-only.default.svc.cluster.local", "A")
        merged = yield query(port, "web.default.svc.cluster.local", "A")
        self.assertEqual(texts(found.answer), ["third-only.default.svc.cluster.local. A 10.7.0.1"])
        self.assertEqual(texts(merged.answer), ["web.default.svc.cluster.local. A 10.0.0.10",
                                                "web.default.svc.cluster.local. A 10.9.0.10"])

    @defer.inlineCallbacks
    def test_a_member_without_fallthrough_keeps_the_nxdomain(self):
        port = yield self.start(stanza(self.start_api(east).url, "merge g\n        fallthrough")
                                + stanza(self.start_api(west).url, "merge g")
                                + stanza(self.start_api(self.third).url))
        reply = yield query(port, "third-only.default.svc.cluster.local", "A")
        self.assertEqual(rcode_of(reply), "NXDOMAIN")

    @defer.inlineCallbacks
    def test_a_stanza_before_the_group_falls_through_into_it(self):
        port = yield self.start(stanza(self.start_api(self.third).url, "fallthrough")
                                + stanza(self.start_api(east).url, "merge g")
                                + stanza(self.start_api(west).url, "merge g"))
        first = yield query(port, "web.default.svc.cluster.local", "A")
        merged = yield query(port, "db.default.svc.cluster.local", "A")
        self.assertEqual(texts(first.answer), ["web.default.svc.cluster.local. A 10.7.0.10"])
        self.assertEqual(len(merged.answer[0]), 3)


class PluginsAroundTests(MergeTestCase):
    @defer.inlineCallbacks
    def test_cache_keeps_the_merged_answer_at_its_smallest_ttl(self):
        east_api, west_api = self.start_api(east), self.start_api(west)
        port = yield self.start(stanza(east_api.url, "merge g\n        ttl 30") + stanza(west_api.url, "merge g\n        ttl 20"),
                                after="    cache 60\n")
        first = yield query(port, "web.default.svc.cluster.local", "A")
        west_api.delete("services", "default", "web")
        yield wait_until(lambda: query(port, "west-only.default.svc.cluster.local", "A").addCallback(
            lambda reply: reply.answer != []), "west synced")
        cached = yield query(port, "web.default.svc.cluster.local", "A")
        self.assertEqual(texts(cached.answer), texts(first.answer))
        self.assertLessEqual(cached.answer[0].ttl, 20)

    @defer.inlineCallbacks
    def test_transfer_gives_the_first_members_zone(self):
        port = yield self.start(stanza(self.start_api(east).url, "merge g", zones="cluster.local")
                                + stanza(self.start_api(west).url, "merge g", zones="cluster.local"),
                                after="    transfer {\n        to *\n    }\n")
        reply = yield query(port, "cluster.local", "AXFR", tcp=True)
        names = {rrset.name.to_text() for rrset in reply.answer}
        self.assertIn("east-only.default.svc.cluster.local.", names)
        self.assertNotIn("west-only.default.svc.cluster.local.", names)

    @defer.inlineCallbacks
    def test_autopath_searches_the_merged_answers(self):
        east_api, west_api = self.start_api(east), self.start_api(west)
        west_api.pod("default", "client", "127.0.0.1")
        port = yield self.start(stanza(east_api.url, "merge g\n        pods verified", zones="cluster.local")
                                + stanza(west_api.url, "merge g\n        pods verified", zones="cluster.local"),
                                after="    autopath @kubernetai\n")
        reply = yield query(port, "web.default.svc.cluster.local.default.svc.cluster.local", "A")
        self.assertEqual(texts(reply.answer), [
            "web.default.svc.cluster.local. A 10.0.0.10", "web.default.svc.cluster.local. A 10.9.0.10",
            "web.default.svc.cluster.local.default.svc.cluster.local. CNAME web.default.svc.cluster.local."])


class MergeRepliesTests(unittest.SynchronousTestCase):
    """The pure merge of replies."""

    def test_one_reply_is_itself(self):
        reply = Response(answers=[address_record(b"a", "10.0.0.1", 5)])
        self.assertIs(merge_replies([reply]), reply)

    def test_the_same_address_twice_is_one_record(self):
        replies = [Response(answers=[address_record(b"a", "10.0.0.1", ttl)]) for ttl in (30, 5)]
        (merged,) = merge_replies(replies).answers
        self.assertEqual((merged.ttl, merged.payload.dottedQuad()), (5, "10.0.0.1"))

    def test_records_are_not_changed_in_place(self):
        shared = address_record(b"a", "10.0.0.1", 30)
        merge_replies([Response(answers=[shared]), Response(answers=[address_record(b"a", "10.0.0.2", 5)])])
        self.assertEqual(shared.ttl, 30)


class CorefileTests(unittest.SynchronousTestCase):
    def block(self, first: str, second: str, zones: str = "cluster.local") -> str:
        return (f".:53 {{\n    kubernetai cluster.local {{\n        endpoint http://127.0.0.1:1\n        {first}\n    }}\n"
                f"    kubernetai {zones} {{\n        endpoint http://127.0.0.1:2\n        {second}\n    }}\n}}\n")

    def test_merge_needs_a_group(self):
        self.assertEqual(refusal(self.block("merge", "")),
                         "Corefile:4: plugin/kubernetai: expected at least 1 argument(s), got 0")

    def test_one_group_only(self):
        self.assertIn("Corefile:4:", refusal(self.block("merge a b", "merge a")))

    def test_group_name_is_checked(self):
        self.assertEqual(refusal(self.block("merge a,b", "merge a")),
                         "Corefile:4: plugin/kubernetai: invalid merge group 'a,b': expected at most 63 letters, "
                         "digits, '.', '_' or '-', starting with a letter or digit")

    def test_a_group_of_one(self):
        self.assertEqual(refusal(self.block("merge a", "merge b")),
                         "Corefile:4: plugin/kubernetai: merge group 'a' has no other stanza in this server block: "
                         "merge needs two or more")

    def test_members_serve_the_same_zones(self):
        self.assertEqual(refusal(self.block("merge a", "merge a", zones="cluster.local example.org")),
                         "Corefile:8: plugin/kubernetai: the stanzas of merge group 'a' must serve the same zones: "
                         "cluster.local., not cluster.local. example.org.")

    def test_plan_names_the_group(self):
        plan = build(self.block("merge a", "merge a")).plan
        self.assertTrue(all(line.endswith(" merge a") for line in plan), plan)
