"""
autopath: the Corefile syntax and CoreDNS's errors, resolv.conf's search
list, the search walk against a scripted next plugin (CoreDNS's autopath
tests), the client's search path from several stanzas, and end to end a
daemon with two stanzas where only the second cluster knows the client.
"""

from types import SimpleNamespace

import dns.message
import dns.rdatatype
from twisted.internet import defer
from twisted.names import dns as tdns
from twisted.trial import unittest

from kubernetai.chain import PluginError, Request, Response
from kubernetai.corefile import CorefileError, parse_corefile
from kubernetai.kubernetes.config import parse_stanza
from kubernetai.kubernetes.objects import Pod
from kubernetai.kubernetes.stanza import Stanza
from kubernetai.message import decode_query
from kubernetai.plugins import autopath
from kubernetai.plugins.autopath import AutoPath, client_search, searched_name
from kubernetai.resolvconf import ResolvConf, parse
from kubernetai.apiserver.server import ApiServer
from tests.support import FakeUpstream, build, query, rcode_of, start_daemon_service

RESOLV_CONF = "nameserver 1.2.3.4\ndomain foo.com\nsearch bar.com Baz.com\noptions ndots:5\n"
ENDPOINT = "{\n  endpoint http://127.0.0.1:1\n }"


def write(testcase, text: str) -> str:
    path = testcase.mktemp()
    with open(path, "w") as file:
        file.write(text)
    return path


def request_for(name: str, qtype=tdns.A, client="10.0.0.1") -> Request:
    message = tdns.Message(recDes=1)
    message.addQuery(name.encode(), qtype)
    return Request(message.toStr(), message, (client, 5353), "udp")


def lines(section) -> list[str]:
    """A reply section as zone-file lines without TTLs, in the order of the reply."""
    return [f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {item.to_text()}"
            for rrset in section for item in rrset]


class ResolvConfTests(unittest.SynchronousTestCase):
    def test_nameservers_and_the_last_search_or_domain_line(self):
        self.assertEqual(parse(RESOLV_CONF), ResolvConf(("1.2.3.4",), ("bar.com", "Baz.com")))
        self.assertEqual(parse("search a.com\ndomain b.com\n").search, ("b.com",))
        self.assertEqual(parse("search a.com\ndomain\n").search, ())
        self.assertEqual(parse("# search a.com\n;search b.com\n\nnameserver\n"), ResolvConf())


class ParseTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.resolv = write(self, RESOLV_CONF)

    def parsed(self, args: str):
        return build(f"example.org:53 {{\n autopath {args}\n kubernetai {ENDPOINT}\n}}\n").handlers[0]

    def test_good(self):
        for args, zones, search, from_stanzas in [
            ("@kubernetes", ("example.org.",), ("",), True),
            ("@kubernetai", ("example.org.",), ("",), True),
            ("Example.NET @kubernetes", ("example.net.",), ("",), True),
            ("10.0.0.0/8 @kubernetes", ("10.in-addr.arpa.",), ("",), True),
            (self.resolv, ("example.org.",), ("bar.com.", "baz.com.", ""), False),
            (f"a.org b.org {self.resolv}", ("a.org.", "b.org."), ("bar.com.", "baz.com.", ""), False),
        ]:
            handler = self.parsed(args)
            self.assertEqual((handler.zones, handler.search, handler.from_stanzas), (zones, search, from_stanzas), args)

    def test_bad(self):
        for block, message in [
            ("autopath", "no resolv-conf specified"),
            ("autopath kubernetes", 'failed to parse "kubernetes": open kubernetes: no such file or directory'),
            ('autopath ""', 'failed to parse "": open : no such file or directory'),
            # Found by tests.fuzz.corefile (tests/fuzz/regressions/corefile/autopath-resolv-conf-path-with-a-nul).
            ("autopath /a\0b", 'failed to parse "/a\0b": open /a\0b: invalid argument'),
            ("autopath 10.0.0.0/33 @kubernetes", "invalid CIDR '10.0.0.0/33'"),
            ("autopath @forward\n forward . 192.0.2.1", "forward does not implement the AutoPather interface"),
            ("autopath @kubernetai {\n  fallthrough\n }", "unknown option 'fallthrough'"),
            ("autopath @kubernetai\n autopath @kubernetes", "this plugin can only be used once per server block"),
        ]:
            with self.assertRaises(CorefileError, msg=block) as raised:
                build(f".:53 {{\n {block}\n}}\n")
            self.assertIn("Corefile:", str(raised.exception))
            self.assertIn(f": plugin/autopath: {message}", str(raised.exception))

    def test_plan(self):
        self.patch(autopath, "HOST_RESOLV_CONF", self.resolv)
        from_stanzas = build(f".:53 {{\n autopath @kubernetai\n kubernetai cluster.local {ENDPOINT}\n}}\n")
        from_file = build(f".:53 {{\n autopath {self.resolv}\n}}\n")
        elsewhere = build(".:53 {\n autopath @kubernetes\n}\n")
        self.assertIn("autopath . @kubernetai: NAMESPACE.svc.ZONE svc.ZONE ZONE of the client's pod in each stanza "
                      f"with pods verified, then {self.resolv} search bar.com. baz.com.", from_stanzas.plan)
        self.assertIn(f"autopath . {self.resolv} search bar.com. baz.com.", from_file.plan)
        self.assertIn("autopath . @kubernetes (not in this block: never rewrites)", elsewhere.plan)

    def test_unreadable_host_resolv_conf_is_no_search_list(self):
        self.patch(autopath, "HOST_RESOLV_CONF", self.mktemp())
        config = build(f".:53 {{\n autopath @kubernetai\n kubernetai cluster.local {ENDPOINT}\n}}\n")
        self.assertEqual(config.handlers[0].search, ("",))


NODATA = "NODATA"


class Scripted:
    """
    A next plugin answering each name as C{answers} says: an rcode (an A
    record with NOERROR) or NODATA; a name it lacks is a PluginError.
    """

    name = "scripted"
    next = None

    def __init__(self, answers: dict, deferred: bool = False) -> None:
        self.answers = answers
        self.deferred = deferred
        self.asked: list[str] = []

    def serve(self, request: Request):
        self.asked.append(request.qname.decode())
        if request.name not in self.answers:
            raise PluginError("end", "no next plugin found")
        response = Response(rcode=tdns.ENAME) if self.answers[request.name] == tdns.ENAME else Response()
        if self.answers[request.name] == tdns.OK:
            response.answers = [tdns.RRHeader(request.qname, tdns.A, tdns.IN, 3600, tdns.Record_A("127.0.0.53"))]
        return defer.succeed(response) if self.deferred else response


def answer_lines(response: Response) -> list[str]:
    return [f"{record.name.name.decode()} {tdns.QUERY_TYPES[record.type]} {record.payload.name.name.decode()}"
            if record.type == tdns.CNAME else f"{record.name.name.decode()} A {record.payload.dottedQuad()}"
            for record in response.answers]


class SearchWalkTests(unittest.SynchronousTestCase):
    """CoreDNS's autopath_test.go: search path example.org. example.com. com., then the bare name."""

    def walk(self, handler: AutoPath, name: str) -> Response:
        result = handler.serve(request_for(name))
        return self.successResultOf(result) if isinstance(result, defer.Deferred) else result

    def handler(self, answers, deferred=False) -> AutoPath:
        handler = AutoPath((".",), ("example.org.", "example.com.", "com."), from_stanzas=False)
        handler.next = Scripted(answers, deferred)
        return handler

    def test_expansion_found_under_a_later_element_gets_a_cname(self):
        for deferred in (False, True):
            handler = self.handler({"b.example.org.": tdns.ENAME, "b.example.com.": tdns.ENAME, "b.com.": tdns.OK},
                                   deferred)
            response = self.walk(handler, "b.example.org")
            self.assertEqual(answer_lines(response), ["b.example.org CNAME b.com", "b.com A 127.0.0.53"])
            self.assertEqual(handler.next.asked, ["b.example.org", "b.example.com", "b.com"])

    def test_the_bare_name_is_tried_last(self):
        handler = self.handler({"b.example.org.": tdns.ENAME, "b.example.com.": tdns.ENAME, "b.com.": tdns.ENAME,
                                "b.": tdns.OK})
        self.assertEqual(answer_lines(self.walk(handler, "b.example.org")), ["b.example.org CNAME b", "b A 127.0.0.53"])

    def test_name_that_exists_as_asked_is_answered_as_is(self):
        handler = self.handler({"a.example.org.": tdns.OK})
        self.assertEqual(answer_lines(self.walk(handler, "a.example.org")), ["a.example.org A 127.0.0.53"])
        self.assertEqual(handler.next.asked, ["a.example.org"])

    def test_not_an_expansion_of_the_first_element_goes_on_unchanged(self):
        handler = self.handler({"a.example.com.": tdns.OK})
        self.assertEqual(answer_lines(self.walk(handler, "a.example.com")), ["a.example.com A 127.0.0.53"])
        self.assertEqual(handler.next.asked, ["a.example.com"])

    def test_all_nxdomain_returns_the_first_answer(self):
        handler = self.handler({"c.example.org.": tdns.ENAME, "c.example.com.": tdns.ENAME, "c.com.": tdns.ENAME,
                                "c.": tdns.ENAME})
        response = self.walk(handler, "c.example.org")
        self.assertEqual((response.rcode, response.answers), (tdns.ENAME, []))
        self.assertEqual(handler.next.asked, ["c.example.org", "c.example.com", "c.com", "c"])

    def test_nodata_under_a_later_element_wins_without_cname(self):
        handler = self.handler({"d.example.org.": tdns.ENAME, "d.example.com.": NODATA, "d.com.": tdns.OK})
        response = self.walk(handler, "d.example.org")
        self.assertEqual((response.rcode, response.answers), (tdns.OK, []))
        self.assertEqual(handler.next.asked, ["d.example.org", "d.example.com"])

    def test_a_failing_expansion_ends_the_walk_with_the_first_answer(self):
        handler = self.handler({"e.example.org.": tdns.ENAME, "e.com.": tdns.OK})
        response = self.walk(handler, "e.example.org")
        self.assertEqual(response.rcode, tdns.ENAME)
        self.assertEqual(handler.next.asked, ["e.example.org", "e.example.com"])

    def test_outside_its_zones_goes_on_unchanged(self):
        handler = AutoPath(("example.net.",), ("example.org.",), from_stanzas=False)
        handler.next = Scripted({"x.example.org.": tdns.ENAME})
        self.assertEqual(self.walk(handler, "x.example.org").rcode, tdns.ENAME)
        self.assertEqual(handler.next.asked, ["x.example.org"])

    def test_the_client_case_is_kept_in_the_cname(self):
        handler = self.handler({"b.example.org.": tdns.ENAME, "b.example.com.": tdns.OK})
        self.assertEqual(answer_lines(self.walk(handler, "B.Example.ORG")),
                         ["B.Example.ORG CNAME B.example.com", "B.example.com A 127.0.0.53"])

    def test_in_search_path(self):
        first = "default.svc.cluster.local."
        for name, base in [
            ("google.com", None),
            ("default.svc.cluster.local", None),
            ("a.default.svc.cluster.local", b"a"),
            ("A.b.Default.svc.cluster.local", b"A.b"),
            ("a.b.svc.cluster.local", None),
        ]:
            self.assertEqual(searched_name(request_for(name), first), base, name)


class AskingTests(unittest.SynchronousTestCase):
    def test_a_copy_with_another_question(self):
        packet = dns.message.make_query("Web.default.ns.svc.cluster.local", "AAAA", use_edns=0, want_dnssec=True,
                                        payload=1232).to_wire()
        request = decode_query(packet, ("10.0.0.1", 5353), "tcp")
        request.observe_reply(lambda *_: None)
        copy = request.asking(b"Web.default.svc.cluster.local")
        self.assertEqual((copy.qname, copy.name, copy.qtype), (b"Web.default.svc.cluster.local",
                                                               "web.default.svc.cluster.local.", tdns.AAAA))
        self.assertEqual((copy.client, copy.protocol, copy.edns, copy.dnssec_ok, copy.payload_size),
                         (("10.0.0.1", 5353), "tcp", True, True, 1232))
        self.assertEqual(copy.message.id, request.message.id)
        self.assertEqual(copy.reply_observers, [])
        again = dns.message.from_wire(copy.packet)
        self.assertEqual((str(again.question[0].name), again.payload), ("Web.default.svc.cluster.local.", 1232))


def stanza(zones: str, pods: dict, extra: str = "pods verified") -> Stanza:
    directive = parse_corefile(f".:53 {{\n kubernetai {zones} {{\n  endpoint http://127.0.0.1:1\n  {extra}\n }}\n}}\n",
                               "Corefile")[0].directives[0]
    cluster = SimpleNamespace(snapshot=SimpleNamespace(pods_by_ip=pods), url="http://127.0.0.1:1")
    return Stanza("kubernetai", parse_stanza(directive, ["."]), cluster, ())


class ClientSearchTests(unittest.SynchronousTestCase):
    """The client's elements from the stanzas that know it, in Corefile order."""

    NAME = "web.default.shop.svc.cluster.local."

    def test_only_the_stanzas_that_know_the_client(self):
        east = stanza("cluster.local", {})
        west = stanza("cluster.local", {"10.1.0.5": (Pod("shop", "client", ("10.1.0.5",)),)})
        self.assertEqual(client_search([east, west], "10.1.0.5", self.NAME),
                         ("shop.svc.cluster.local.", "svc.cluster.local.", "cluster.local."))
        self.assertEqual(client_search([east, west], "10.1.0.6", self.NAME), ())

    def test_every_stanza_that_knows_it_in_corefile_order(self):
        first = stanza("cluster.local", {"10.1.0.5": (Pod("a", "one", ()), Pod("b", "two", ()))})
        second = stanza("cluster.local", {"10.1.0.5": (Pod("shop", "client", ()),)})
        self.assertEqual(client_search([first, second], "10.1.0.5", self.NAME),
                         ("a.svc.cluster.local.", "svc.cluster.local.", "cluster.local.",
                          "shop.svc.cluster.local.", "svc.cluster.local.", "cluster.local."))

    def test_pods_must_be_verified(self):
        pods = {"10.1.0.5": (Pod("shop", "client", ()),)}
        for extra in ("pods insecure", "pods disabled", "endpoint_pod_names"):
            self.assertEqual(client_search([stanza("cluster.local", pods, extra)], "10.1.0.5", self.NAME), (), extra)

    def test_the_zone_is_the_one_holding_the_name(self):
        pods = {"10.1.0.5": (Pod("shop", "client", ()),)}
        both = stanza("east.local cluster.local", pods)
        other = stanza("west.local", pods)
        root = stanza(".", pods)
        self.assertEqual(client_search([other, both], "10.1.0.5", self.NAME),
                         ("shop.svc.cluster.local.", "svc.cluster.local.", "cluster.local."))
        self.assertEqual(client_search([root], "10.1.0.5", "web.shop.svc."), ("shop.svc.", "svc.", "."))


def cluster_east(api: ApiServer) -> None:
    api.namespace("default")
    api.service("default", "web", cluster_ips=["10.0.0.10"], ports=[{"name": "http", "port": 80}])


def cluster_west(client_ip: str):
    def populate(api: ApiServer) -> None:
        api.namespace("default")
        api.namespace("shop")
        api.service("shop", "cart", cluster_ips=["10.9.0.2"], ports=[{"name": "http", "port": 80}])
        api.pod("shop", "client", client_ip)

    return populate


class TwoClustersTests(unittest.TestCase):
    """
    autopath @kubernetai before two cluster.local stanzas, both with pods
    verified; the client pod (127.0.0.1, namespace shop) is only in the
    second cluster, web only in the first.  Its resolver's search path is
    shop.svc.cluster.local svc.cluster.local cluster.local example.internal.
    """

    def start_api(self, populate) -> ApiServer:
        api = ApiServer()
        api.start()
        self.addCleanup(api.stop)
        populate(api)
        return api

    def start(self, client_ip: str = "127.0.0.1"):
        self.patch(autopath, "HOST_RESOLV_CONF", write(self, "nameserver 192.0.2.1\nsearch example.internal\n"))
        self.upstream = FakeUpstream({("www.example.internal.", "A"): ["192.0.2.7"]})
        east, west = self.start_api(cluster_east), self.start_api(cluster_west(client_ip))
        self.dns = start_daemon_service(self, f""".:0 {{
    bind 127.0.0.1
    autopath @kubernetai
    kubernetai cluster.local {{
        endpoint {east.url}
        pods verified
        fallthrough
    }}
    kubernetai cluster.local {{
        endpoint {west.url}
        pods verified
    }}
    forward . 127.0.0.1:{self.upstream.start(self)}
}}
""").getServiceNamed("dns")
        return self.dns.listening.addCallback(lambda _: self.dns.addresses()[0][2])

    @defer.inlineCallbacks
    def test_service_of_another_namespace_in_the_other_cluster(self):
        port = yield self.start()
        reply = yield query(port, "web.default.shop.svc.cluster.local", "A")
        self.assertEqual(lines(reply.answer), [
            "web.default.shop.svc.cluster.local. CNAME web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. A 10.0.0.10",
        ])
        self.assertEqual(str(reply.question[0].name), "web.default.shop.svc.cluster.local.")

    @defer.inlineCallbacks
    def test_answers_that_depend_on_the_client_are_never_replayed(self):
        port = yield self.start()
        for _ in range(2):
            yield query(port, "web.default.shop.svc.cluster.local", "A")
            yield query(port, "cart.shop.svc.cluster.local", "A")
        (table,) = self.dns.tables.values()
        self.assertEqual(table.ready_replies, {})

    @defer.inlineCallbacks
    def test_own_namespace_is_answered_as_asked(self):
        port = yield self.start()
        reply = yield query(port, "cart.shop.svc.cluster.local", "A")
        self.assertEqual(lines(reply.answer), ["cart.shop.svc.cluster.local. A 10.9.0.2"])

    @defer.inlineCallbacks
    def test_found_under_a_later_stanza_element(self):
        port = yield self.start()
        reply = yield query(port, "web.default.svc.shop.svc.cluster.local", "A")
        self.assertEqual(lines(reply.answer), [
            "web.default.svc.shop.svc.cluster.local. CNAME web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. A 10.0.0.10",
        ])

    @defer.inlineCallbacks
    def test_found_under_the_host_search_list(self):
        port = yield self.start()
        reply = yield query(port, "www.shop.svc.cluster.local", "A")
        self.assertEqual(lines(reply.answer), [
            "www.shop.svc.cluster.local. CNAME www.example.internal.",
            "www.example.internal. A 192.0.2.7",
        ])
        self.assertEqual(self.upstream.queries, [("www.example.internal.", "A", "udp")])

    @defer.inlineCallbacks
    def test_nothing_anywhere_is_the_nxdomain_of_the_name_asked(self):
        port = yield self.start()
        reply = yield query(port, "nothing.shop.svc.cluster.local", "A")
        self.assertEqual((rcode_of(reply), reply.answer), ("NXDOMAIN", []))
        self.assertEqual(reply.authority[0].name.to_text(), "cluster.local.")
        self.assertEqual(self.upstream.queries, [("nothing.example.internal.", "A", "udp"), ("nothing.", "A", "udp")])

    @defer.inlineCallbacks
    def test_client_unknown_to_every_stanza_is_not_rewritten(self):
        port = yield self.start(client_ip="10.9.9.9")
        reply = yield query(port, "web.default.shop.svc.cluster.local", "A")
        self.assertEqual((rcode_of(reply), reply.answer), ("NXDOMAIN", []))
        self.assertEqual(self.upstream.queries, [])
