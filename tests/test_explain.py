"""
explain: why a name gets its answer, asked of a running daemon over HTTP
(C{/explain}) and of C{twistd kubernetai --explain} as a subprocess, with
stanzas on test API servers: the server block, plugins and stanzas in the
order they ran, fallthrough, failover, a stanza not synced, a merge group,
the cache and kept replies; no secret in the answer; bad questions and
Corefile mistakes with their lines.
"""

import json

from twisted.internet import defer
from twisted.trial import unittest

from kubernetai.apiserver.server import ApiServer
from kubernetai.plugins.explain import DEFAULT_ADDRESS
from tests.support import build, query, refusal, write_corefile
from tests.test_daemon import twistd
from tests.test_health_ready import Running, get
from tests.test_kubernetes_stanza import StanzaTestCase

DEAD = "http://127.0.0.1:1"


def east(api: ApiServer) -> None:
    api.namespace("default")
    api.service("default", "web", cluster_ips=["10.0.0.10"])


def west(api: ApiServer) -> None:
    api.namespace("default")
    api.service("default", "web", cluster_ips=["10.9.0.10"])
    api.service("default", "west-only", cluster_ips=["10.9.0.11"])


def stanza(url: str, extra: str = "") -> str:
    return f"    kubernetai cluster.local {{\n        endpoint {url}\n        startup_timeout 100ms\n        {extra}\n    }}\n"


class ExplainTestCase(StanzaTestCase):
    @defer.inlineCallbacks
    def start(self, stanzas: str, plugins: str = ""):
        """A daemon with C{explain 127.0.0.1:0}; (DNS port, explain port) once it listens."""
        self.running = Running(self, f".:0 {{\n    bind 127.0.0.1\n    explain 127.0.0.1:0\n{plugins}{stanzas}}}\n")
        port = yield self.running.dns_port()
        return port, self.running.http_port()

    @defer.inlineCallbacks
    def explain(self, port: int, question: str):
        """/explain?QUESTION&format=json as (status code, document)."""
        code, _, body = yield get(port, f"/explain?{question}&format=json")
        return code, json.loads(body)


class ExplainedAnswerTests(ExplainTestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.dns, self.http = yield self.start(stanza(self.start_api(east).url, "fallthrough")
                                               + stanza(self.start_api(west).url), "    errors\n")

    @defer.inlineCallbacks
    def test_fallthrough_to_the_stanza_that_answers(self):
        code, document = yield self.explain(self.http, "name=west-only.default.svc.cluster.local&type=A")
        self.assertEqual(code, 200)
        self.assertEqual(document["server_block"]["keys"], [".:0"])
        self.assertEqual([(step["plugin"], step["handed_on"], step["returned"]) for step in document["steps"]],
                         [("errors", True, "NOERROR"), ("kubernetai", False, "NOERROR")])
        first, second = document["steps"][1]["stanzas"]
        self.assertEqual(first["outcome"], "NXDOMAIN; falls through to what follows (fallthrough)")
        self.assertEqual((second["outcome"], second["records"]),
                         ("answered: 1 record(s)", ["west-only.default.svc.cluster.local. 5 IN A 10.9.0.11"]))
        self.assertEqual(document["answer"]["answers"], ["west-only.default.svc.cluster.local. 5 IN A 10.9.0.11"])

    @defer.inlineCallbacks
    def test_first_stanza_answers_and_the_second_is_not_asked(self):
        _, document = yield self.explain(self.http, "name=web.default.svc.cluster.local")
        (only,) = document["steps"][1]["stanzas"]
        self.assertEqual(only["records"], ["web.default.svc.cluster.local. 5 IN A 10.0.0.10"])

    @defer.inlineCallbacks
    def test_kept_reply_shown_after_a_client_asked(self):
        _, before = yield self.explain(self.http, "name=web.default.svc.cluster.local")
        yield query(self.dns, "web.default.svc.cluster.local", "A")
        _, after = yield self.explain(self.http, "name=web.default.svc.cluster.local")
        self.assertEqual((before["kept_replies"], after["kept_replies"]), ({"kept": 0, "valid": 0},
                                                                          {"kept": 1, "valid": 1}))
        self.assertTrue(after["answer"]["kept_to_send_again"])

    @defer.inlineCallbacks
    def test_text_for_people(self):
        code, content_type, body = yield get(self.http, "/explain?name=nowhere.default.svc.cluster.local&type=aaaa")
        self.assertEqual((code, content_type), (200, b"text/plain; charset=utf-8"))
        text = body.decode()
        self.assertIn("question: nowhere.default.svc.cluster.local. AAAA (asked over UDP by 127.0.0.1)\n", text)
        self.assertIn("  2. kubernetai: answered NXDOMAIN\n", text)
        self.assertIn("NXDOMAIN; stands (no fallthrough for the name)", text)
        self.assertIn("answer: NXDOMAIN", text)

    @defer.inlineCallbacks
    def test_a_name_no_server_block_serves(self):
        running = Running(self, "example.org:0 {\n    bind 127.0.0.1\n    explain 127.0.0.1:0\n    whoami\n}\n")
        yield running.dns_port()
        _, document = yield self.explain(running.http_port(), "name=other.test")
        self.assertEqual((document["server_block"], document["answer"]["rcode"]), (None, "REFUSED"))

    @defer.inlineCallbacks
    def test_bad_questions_say_what_is_wrong(self):
        for question, problem in [("", b"name: missing"), ("name=a&type=NOPE", b"type: 'NOPE' is no DNS type"),
                                  ("name=a..b", b"is no DNS name"), ("name=a&client=me", b"client: 'me' is no IP"),
                                  ("name=a&port=x", b"port: 'x' is no port number")]:
            code, _, body = yield get(self.http, f"/explain?{question}")
            self.assertEqual(code, 400, question)
            self.assertIn(problem, body, question)


class CacheAndFailoverTests(ExplainTestCase):
    @defer.inlineCallbacks
    def test_answer_from_the_cache(self):
        _, http = yield self.start(stanza(self.start_api(east).url), "    cache 30\n")
        yield self.explain(http, "name=web.default.svc.cluster.local")
        _, document = yield self.explain(http, "name=web.default.svc.cluster.local")
        self.assertEqual([(step["plugin"], step["handed_on"]) for step in document["steps"]], [("cache", False)])

    @defer.inlineCallbacks
    def test_failover_hands_on_a_stanza_not_synced(self):
        _, http = yield self.start(stanza(DEAD, "failover") + stanza(self.start_api(west).url))
        _, document = yield self.explain(http, "name=web.default.svc.cluster.local")
        dead, live = document["steps"][0]["stanzas"]
        self.assertEqual((dead["synced"], dead["outcome"]), (False, "handed on by failover: not synced"))
        self.assertEqual(live["records"], ["web.default.svc.cluster.local. 5 IN A 10.9.0.10"])

    @defer.inlineCallbacks
    def test_a_stanza_not_synced_without_failover(self):
        _, http = yield self.start(stanza(DEAD))
        _, document = yield self.explain(http, "name=web.default.svc.cluster.local")
        (dead,) = document["steps"][0]["stanzas"]
        self.assertEqual(dead["outcome"], "SERVFAIL: not synced yet, the name is not known")

    @defer.inlineCallbacks
    def test_merge_group_shows_each_member(self):
        _, http = yield self.start(stanza(self.start_api(east).url, "merge g") + stanza(self.start_api(west).url, "merge g"))
        _, document = yield self.explain(http, "name=web.default.svc.cluster.local")
        (group,) = document["steps"][0]["stanzas"]
        self.assertEqual(group["stanza"], "merge g")
        self.assertEqual([member["records"] for member in group["members"]],
                         [["web.default.svc.cluster.local. 5 IN A 10.0.0.10"],
                          ["web.default.svc.cluster.local. 5 IN A 10.9.0.10"]])
        self.assertEqual(len(document["answer"]["answers"]), 2)
        _, _, text = yield get(http, "/explain?name=web.default.svc.cluster.local")
        self.assertIn(b"\n       merge g: answered: 2 record(s)\n", text)
        self.assertIn(b"\n         - kubernetai #2 cluster.local. (", text)

    @defer.inlineCallbacks
    def test_no_secret_in_the_answer(self):
        api = ApiServer(token="s3cret-token-value")
        api.start()
        self.addCleanup(api.stop)
        east(api)
        kubeconfig = self.mktemp()
        api.write_kubeconfig(kubeconfig, token="s3cret-token-value")
        _, http = yield self.start(f"    kubernetai cluster.local {{\n        kubeconfig {kubeconfig}\n    }}\n")
        code, _, text = yield get(http, "/explain?name=web.default.svc.cluster.local")
        _, document = yield self.explain(http, "name=web.default.svc.cluster.local")
        self.assertIn(b"10.0.0.10", text)
        self.assertNotIn(b"s3cret", text)
        self.assertNotIn("s3cret", json.dumps(document))
        self.assertNotIn(kubeconfig, json.dumps(document))


class CorefileTests(unittest.SynchronousTestCase):
    def test_off_without_the_directive(self):
        self.assertEqual(build(".:53 {\n    whoami\n}\n").shared.http_listeners, {})

    def test_loopback_by_default(self):
        self.assertEqual(DEFAULT_ADDRESS, "127.0.0.1:8182")
        self.assertIn(("127.0.0.1", 8182), build(".:53 {\n    explain\n}\n").shared.http_listeners)

    def test_one_address_at_most(self):
        self.assertEqual(refusal(".:53 {\n    whoami\n    explain :1 :2\n}\n"),
                         "Corefile:3: plugin/explain: unexpected argument ':2': expected at most 1")

    def test_address_checked(self):
        self.assertEqual(refusal(".:53 {\n    explain 8182\n}\n"),
                         "Corefile:2: plugin/explain: address 8182: missing port in address")

    def test_no_block(self):
        self.assertIn("Corefile:3: plugin/explain: unknown option 'x'", refusal(".:53 {\n    explain {\n        x\n    }\n}\n"))

    def test_once_per_block(self):
        self.assertIn("Corefile:3:", refusal(".:53 {\n    explain\n    explain\n}\n"))


class CommandLineTests(unittest.TestCase):
    """C{twistd kubernetai -c Corefile --explain NAME [TYPE]}: a one-shot."""

    @defer.inlineCallbacks
    def test_explains_after_the_sync_and_exits(self):
        api = ApiServer()
        api.start()
        self.addCleanup(api.stop)
        west(api)
        path = write_corefile(self, ".:1 {\n    cache\n" + stanza(DEAD, "failover") + stanza(api.url) + "}\n")
        result = yield twistd("-n", "--pidfile=", "kubernetai", "-c", path, "--explain",
                              "west-only.default.svc.cluster.local", "A")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("server block: .:1 (", result.stdout)
        self.assertIn("  1. cache: handed on; returned NOERROR\n", result.stdout)
        self.assertIn("kubernetai #1 cluster.local. (http://127.0.0.1:1), not synced: handed on by failover: not synced",
                      result.stdout)
        self.assertIn(f"kubernetai #2 cluster.local. ({api.url}), synced: answered: 1 record(s)", result.stdout)
        self.assertIn("  answers: west-only.default.svc.cluster.local. 5 IN A 10.9.0.11", result.stdout)

    @defer.inlineCallbacks
    def test_a_bad_type_is_refused(self):
        path = write_corefile(self, ".:1 {\n    whoami\n}\n")
        result = yield twistd("-n", "kubernetai", "-c", path, "--explain", "a.example", "NOPE")
        self.assertEqual(result.returncode, 1)
        self.assertIn("--explain: 'NOPE' is no DNS type", result.stderr + result.stdout)
