# -*- test-case-name: tests.test_chaos -*-
"""
The chaos test: a daemon serving a few hundred services from the test API
server over verified HTTPS, under a steady stream of UDP queries, while the
API server drops every watch, answers 410 Gone again and again, stalls for
30 s, answers 500s and 503s with Retry-After, goes down for a minute and
comes back with a new serving certificate from the same CA.

Every answer for a name that exists throughout must be right; what changed
on the API server while it misbehaved must show once it is back (deleted
names NXDOMAIN); reconnects must back off (beside one probe of /readyz a
second while no watch is up); and /ready?verbose, the logs (a line when the
stanza's API server fails it, one when it is back) and /metrics must say
what happened.  Plain /ready stays 200 once synced, as CoreDNS's does.

The durations are the real ones (about 3 minutes in all);
KUBERNETAI_CHAOS_SCALE, a float (default 1), multiplies the stall and the
outage for quick runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import dns.message
import dns.rcode
import dns.rdatatype
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, protocol, reactor, task
from twisted.trial import unittest

from kubernetai.kubernetes.link import PROBE_INTERVAL, REMINDER_INTERVAL
from kubernetai.kubernetes.watch import Backoff
from kubernetai.apiserver.server import ApiServer
from tests.support import capture_logs, query, wait_until
from tests.test_health_ready import Running, get

SCALE = float(os.environ.get("KUBERNETAI_CHAOS_SCALE", "1"))
STALL = 30.0 * SCALE
OUTAGE = 60.0 * SCALE
ZONE = "cluster.local"
NAMESPACES = ("blue", "green", "red")
CLUSTER_IP_SERVICES = 300
HEADLESS_SERVICES = 30
ENDPOINTS_PER_SERVICE = 3
WATCHES = 3  # services, endpointslices, namespaces
QUERIES_PER_SECOND = 250
QUERY_TICK = 0.02
# Long enough that only a lost or wrong answer fails, not a busy machine.
ANSWER_TIMEOUT = 5.0
# Generous: the backoff's cap (the longest wait before a reconnect) plus a relist.
CONVERGENCE_TIMEOUT = 3 * Backoff().cap
RETRY_AFTER = 6
# Every round of every fault adds, changes and deletes a service.
CHURN_PHASES = 10
EARLY_WINDOW = 4.0


@dataclass(frozen=True)
class Expected:
    """A question and the records of its only right answer."""

    name: str
    rdtype: int
    records: frozenset


def fqdn(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.{ZONE}."


def populate(api: ApiServer) -> list[Expected]:
    """Fill the API server with what exists throughout; the answers the daemon must give for it."""
    expected = []
    for namespace in NAMESPACES:
        api.namespace(namespace)
    for index in range(CLUSTER_IP_SERVICES):
        namespace, name = NAMESPACES[index % len(NAMESPACES)], f"web-{index}"
        ip = f"10.0.{index // 250}.{index % 250 + 1}"
        api.service(namespace, name, cluster_ips=[ip], ports=[{"name": "http", "port": 80}])
        expected.append(Expected(fqdn(name, namespace), dns.rdatatype.A, frozenset({ip})))
        if index % 10 == 0:
            srv = f"0 100 80 {fqdn(name, namespace)}"
            expected.append(Expected(f"_http._tcp.{fqdn(name, namespace)}", dns.rdatatype.SRV, frozenset({srv})))
    for index in range(HEADLESS_SERVICES):
        namespace, name = NAMESPACES[index % len(NAMESPACES)], f"db-{index}"
        ips = [f"10.1.{index}.{number + 1}" for number in range(ENDPOINTS_PER_SERVICE)]
        api.service(namespace, name, headless=True)
        api.endpoint_slice(namespace, f"{name}-x1", name, endpoints=[
            {"addresses": [ip], "hostname": f"db-{number}"} for number, ip in enumerate(ips)
        ])
        expected.append(Expected(fqdn(name, namespace), dns.rdatatype.A, frozenset(ips)))
        expected += [Expected(f"db-{number}.{fqdn(name, namespace)}", dns.rdatatype.A, frozenset({ip}))
                     for number, ip in enumerate(ips)]
    return expected


def prepare_churn(api: ApiServer) -> None:
    """Per phase, a service that will move to a new IP and one that will be deleted."""
    api.namespace("churn")
    for phase in range(CHURN_PHASES):
        api.service("churn", f"moving-{phase}", cluster_ips=[f"10.2.{phase}.1"])
        api.service("churn", f"doomed-{phase}", cluster_ips=[f"10.2.{phase}.2"])


def churn(api: ApiServer, phase: int) -> dict[str, tuple[str, frozenset]]:
    """Add, modify and delete a service; (rcode, A records) each name must answer once the daemon has it."""
    api.service("churn", f"new-{phase}", cluster_ips=[f"10.3.{phase}.1"])
    api.service("churn", f"moving-{phase}", cluster_ips=[f"10.3.{phase}.2"])
    api.delete("services", "churn", f"doomed-{phase}")
    return {
        fqdn(f"new-{phase}", "churn"): ("NOERROR", frozenset({f"10.3.{phase}.1"})),
        fqdn(f"moving-{phase}", "churn"): ("NOERROR", frozenset({f"10.3.{phase}.2"})),
        fqdn(f"doomed-{phase}", "churn"): ("NXDOMAIN", frozenset()),
    }


def answer_of(reply: dns.message.Message, rdtype: int) -> tuple[str, frozenset]:
    """The rcode and the answer's records of C{rdtype}, as text."""
    records = frozenset(rdata.to_text() for rrset in reply.answer if rrset.rdtype == rdtype for rdata in rrset)
    return dns.rcode.to_text(reply.rcode()), records


def problem_with(reply: dns.message.Message, expected: Expected) -> str | None:
    """What is wrong with C{reply} to C{expected}'s question, or None."""
    question = f"{expected.name} {dns.rdatatype.to_text(expected.rdtype)}"
    if [(q.name.to_text().lower(), q.rdtype) for q in reply.question] != [(expected.name, expected.rdtype)]:
        return f"{question}: an answer to another question"
    rcode, records = answer_of(reply, expected.rdtype)
    if (rcode, records) != ("NOERROR", expected.records):
        return f"{question}: {rcode} {sorted(records)}, not {sorted(expected.records)}"
    return None


class QueryLoad(protocol.DatagramProtocol):
    """Asks the daemon, over UDP at a steady rate, every question of C{expected} in turn, and
    notes every answer that is wrong or missing after L{ANSWER_TIMEOUT}."""

    def __init__(self, dns_port: int, expected: list[Expected]) -> None:
        self.dns_port = dns_port
        self.questions = [(each, dns.message.make_query(each.name, each.rdtype).to_wire()) for each in expected]
        self.sent = 0
        self.answered = 0
        self.failures: list[str] = []
        self.pending: dict[int, tuple[Expected, float]] = {}
        self.loops = [task.LoopingCall(self.send_some), task.LoopingCall(self.expire)]

    def start(self, testcase: unittest.TestCase) -> None:
        """Start asking; stopped when the test ends."""
        port = reactor.listenUDP(0, self, interface="127.0.0.1")
        testcase.addCleanup(port.stopListening)
        for loop, interval in zip(self.loops, (QUERY_TICK, 0.5)):
            loop.start(interval)
            testcase.addCleanup(lambda loop=loop: loop.stop() if loop.running else None)

    def finish(self):
        """Stop asking; fires once every question has been answered or has timed out."""
        self.loops[0].stop()
        return wait_until(lambda: not self.pending, "the last answers", ANSWER_TIMEOUT + 1)

    def send_some(self) -> None:
        now = reactor.seconds()
        for _ in range(int(QUERIES_PER_SECOND * QUERY_TICK)):
            expected, wire = self.questions[self.sent % len(self.questions)]
            message_id = self.sent % 65536
            self.sent += 1
            self.pending[message_id] = (expected, now)
            self.transport.write(message_id.to_bytes(2, "big") + wire[2:], ("127.0.0.1", self.dns_port))

    def datagramReceived(self, datagram: bytes, address) -> None:
        asked = self.pending.pop(int.from_bytes(datagram[:2], "big"), None)
        if asked is None:
            return  # late: already counted as missing
        self.answered += 1
        problem = problem_with(dns.message.from_wire(datagram), asked[0])
        if problem:
            self.failures.append(problem)

    def expire(self) -> None:
        now = reactor.seconds()
        for message_id, (expected, sent) in list(self.pending.items()):
            if now - sent > ANSWER_TIMEOUT:
                del self.pending[message_id]
                self.failures.append(f"{expected.name} {dns.rdatatype.to_text(expected.rdtype)}: no answer")


def most_attempts(seconds: float) -> int:
    """The most connection attempts a watch can make in C{seconds} of outage: every backoff at its shortest."""
    backoff = Backoff(random=lambda: 0.0)
    attempts, elapsed = 0, backoff.next_delay()
    while elapsed <= seconds:
        attempts += 1
        elapsed += backoff.next_delay()
    return attempts


@defer.inlineCallbacks
def scrape(http_port: int):
    """The samples of /metrics, as {(name, labels): value}."""
    _, _, body = yield get(http_port, "/metrics")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(body.decode()) for sample in family.samples}


def total(samples: dict, name: str, **labels) -> float:
    """The sum of the samples of C{name} that have C{labels}."""
    return sum(value for (sample, sample_labels), value in samples.items()
               if sample == name and set(labels.items()) <= sample_labels)


def sleep(seconds: float):
    return task.deferLater(reactor, seconds, lambda: None)


def retries_after(received, mark, count: int):
    """(request answered with an error, the next request for the same resource) for those of the
    C{count} requests that came after C{mark} that were asked again (a probe of /readyz may not be)."""
    requests = list(received)
    later = requests[next(index for index, request in enumerate(requests) if request is mark) + 1:]
    retries = [(refused, next((r for r in later[index + 1:] if r.resource == refused.resource), None))
               for index, refused in enumerate(later[:count])]
    return [(refused, retry) for refused, retry in retries if retry is not None]


class FlappingApiServerTests(unittest.TestCase):
    """One scenario: every fault in turn, with the same daemon, API server and query stream."""

    timeout = 120 + 3 * (STALL + OUTAGE)

    @defer.inlineCallbacks
    def setUp(self):
        self.logs = capture_logs(self)
        self.api = ApiServer(tls=True)
        self.api.start()
        self.addCleanup(self.api.stop)
        self.expected = populate(self.api)
        prepare_churn(self.api)
        kubeconfig = os.path.join(self.mktemp(), "kubeconfig")
        os.makedirs(os.path.dirname(kubeconfig))
        self.api.write_kubeconfig(kubeconfig, context="chaos")
        self.running = Running(self, f""".:0 {{
    bind 127.0.0.1
    errors
    ready 127.0.0.1:0
    health 127.0.0.1:0
    prometheus 127.0.0.1:0
    kubernetai {ZONE} {{
        kubeconfig {kubeconfig} chaos
    }}
}}
""")
        self.dns_port = yield self.running.dns_port()
        self.http_port = self.running.http_port()
        self.phase = 0

    @defer.inlineCallbacks
    def test_flapping_api_server_under_load(self):
        load = QueryLoad(self.dns_port, self.expected)
        load.start(self)
        yield sleep(1)
        yield self.drop_every_watch(rounds=3)
        yield self.gone_again_and_again(rounds=3)
        yield self.stall()
        yield self.server_errors()
        yield self.outage()
        yield load.finish()
        self.assertEqual(load.failures[:20], [], f"{len(load.failures)} of {load.sent} answers failed")
        self.assertGreater(load.answered, QUERIES_PER_SECOND * (STALL + OUTAGE) / 2, "the load did not run")

    # The phases, in the order

    @defer.inlineCallbacks
    def drop_every_watch(self, rounds: int):
        """Dropped watches resume from their resourceVersion: no relist."""
        before = yield scrape(self.http_port)
        lists = self.api_lists()
        for _ in range(rounds):
            yield self.all_watching()
            self.api.drop_watches()
            yield self.converged(self.churn())
        after = yield scrape(self.http_port)
        self.assertEqual(self.api_lists(), lists)
        for kind in ("services", "endpointslices", "namespaces"):
            restarts = (total(after, "kubernetai_stanza_watch_restarts_total", kind=kind)
                        - total(before, "kubernetai_stanza_watch_restarts_total", kind=kind))
            self.assertGreaterEqual(restarts, rounds, kind)

    @defer.inlineCallbacks
    def gone_again_and_again(self, rounds: int):
        """Every resumed watch answered 410 Gone (history compacted while it was away): each relists."""
        before = yield scrape(self.http_port)
        for _ in range(rounds):
            yield self.all_watching()
            self.api.drop_watches()
            changes = self.churn()
            self.api.expire_history()
            yield self.converged(changes)
        yield self.all_watching()
        after = yield scrape(self.http_port)
        relists = (total(after, "kubernetai_stanza_lists_total", kind="services")
                   - total(before, "kubernetai_stanza_lists_total", kind="services"))
        self.assertEqual(relists, rounds)
        self.assertGreaterEqual(sum("expired, listing again" in line for line in self.logs), rounds * WATCHES)

    @defer.inlineCallbacks
    def stall(self):
        """Requests hang for STALL seconds: one request per watch waits, the stanza reports stale."""
        yield self.settle()
        watches = self.api_watches()
        self.api.drop_watches()
        self.api.stall(STALL)
        started = reactor.seconds()
        changes = self.churn()
        yield wait_until(lambda: self.api_watches() - watches == WATCHES, "the watches to try again", STALL)
        yield self.check_reported_stale("ProtocolError")
        yield sleep(STALL - (reactor.seconds() - started))
        self.assertEqual(self.api_watches() - watches, WATCHES, "a watch sent more than one request into the stall")
        yield self.converged(changes)

    @defer.inlineCallbacks
    def server_errors(self):
        """500s, then 503s with Retry-After: counted by code, each round logged once, and Retry-After is
        waited out."""
        yield self.settle()
        before = yield scrape(self.http_port)
        logged_before = len(self.logs)
        self.api.drop_watches()
        self.api.fail_with(500, count=WATCHES)
        yield self.converged(self.churn())
        yield self.all_watching()
        mark = self.api.last
        self.api.drop_watches()
        self.api.fail_with(503, count=WATCHES, retry_after=RETRY_AFTER)
        yield self.converged(self.churn())
        yield self.all_watching()
        after = yield scrape(self.http_port)
        for code in ("500", "503"):
            errors = (total(after, "coredns_kubernetes_rest_client_requests_total", code=code)
                      - total(before, "coredns_kubernetes_rest_client_requests_total", code=code))
            self.assertEqual(errors, WATCHES, code)
        self.assertEqual(len(self.stanza_lines(logged_before, "; retrying")), 2, "one line a round")
        retries = retries_after(self.api.received, mark, WATCHES)
        self.assertGreaterEqual(len([refused for refused, _ in retries if refused.verb == "watch"]), WATCHES - 1)
        for refused, retry in retries:
            self.assertGreaterEqual(retry.at - refused.at, RETRY_AFTER * 0.95, f"{refused.resource} retried early")

    @defer.inlineCallbacks
    def outage(self):
        """Down for OUTAGE seconds (connections cut at once, so each attempt is seen), back with a new
        certificate: attempts are few and further apart, the stanza reports stale, then resumes."""
        yield self.settle()
        before = yield scrape(self.http_port)
        lists = self.api_lists()
        cut_before, logged_before = len(self.api.cut_at), len(self.logs)
        yield self.api.go_down(keep_port=True)
        down_at = reactor.seconds()
        changes = self.churn()
        yield sleep(EARLY_WINDOW)
        yield self.check_reported_stale("Error")
        yield sleep(OUTAGE - (reactor.seconds() - down_at))
        attempts = [at - down_at for at in self.api.cut_at[cut_before:]]
        certificate = self.api.serving.cert_pem
        self.api.rotate_certificate()
        self.api.come_back()
        self.assertNotEqual(self.api.serving.cert_pem, certificate)
        during = yield scrape(self.http_port)
        restarts = (total(during, "kubernetai_stanza_watch_restarts_total")
                    - total(before, "kubernetai_stanza_watch_restarts_total"))
        self.assertGreaterEqual(len(attempts), WATCHES, "each watch tries again")
        self.assertLessEqual(restarts, WATCHES * (1 + most_attempts(OUTAGE)), "reconnects back off")
        self.assertLessEqual(len(attempts), WATCHES * most_attempts(OUTAGE) + OUTAGE / PROBE_INTERVAL + 1,
                             "the watches' backed-off attempts and a probe a second, no more")
        self.assertLessEqual(most_attempts(60), 20, "the backoff allows a watch 20 attempts a minute at most")
        early = sum(at < EARLY_WINDOW for at in attempts) / EARLY_WINDOW
        late = sum(at > OUTAGE / 2 for at in attempts) / (OUTAGE / 2)
        self.assertGreater(early, late, f"attempts come further apart: {attempts}")
        failures = self.stanza_lines(logged_before, "; retrying")
        self.assertGreaterEqual(len(failures), 1)
        self.assertLessEqual(len(failures), 1 + OUTAGE // REMINDER_INTERVAL, "one line, one reminder a minute")
        self.assertEqual([line for line in failures if "answered" in line or "\n" in line], [],
                         "a network failure logged as an answer, or on several lines")
        yield self.converged(changes)
        yield self.all_watching()
        self.assertEqual(self.api_lists(), lists, "resumed from the resourceVersion, no relist")
        after = yield scrape(self.http_port)
        failed = (total(after, "coredns_kubernetes_rest_client_requests_total", code="<error>")
                  - total(before, "coredns_kubernetes_rest_client_requests_total", code="<error>"))
        self.assertGreaterEqual(failed, len(attempts))
        yield self.check_reported_fresh()
        self.assertEqual(len(self.stanza_lines(logged_before, ": connected again after ")), 1)

    # Checks

    def stanza_lines(self, since: int, text: str) -> list[str]:
        """The log lines since the C{since}th that name the stanza and hold C{text}."""
        name = f"kubernetai #1 {ZONE}. ({self.api.url}): "
        return [line for line in self.logs[since:] if line.startswith(name) and text in line]

    @defer.inlineCallbacks
    def check_reported_stale(self, cause: str):
        """While the API server misbehaves: /ready stays OK (as CoreDNS's), ?verbose and /metrics say
        the stanza is stale and why."""
        plain = yield get(self.http_port, "/ready")
        self.assertEqual(plain[::2], (200, b"OK"))
        code, _, body = yield get(self.http_port, "/ready?verbose")
        (stanza,) = json.loads(body)["stanzas"]
        self.assertEqual((code, stanza["synced"]), (200, True))
        self.assertIsNotNone(stanza["stale_since"])
        for watch in stanza["watches"]:
            self.assertFalse(watch["up"], watch)
            self.assertIn(cause, watch["last_error"], watch)
        metrics = yield scrape(self.http_port)
        self.assertGreater(total(metrics, "kubernetai_stanza_stale_seconds"), 0)

    @defer.inlineCallbacks
    def check_reported_fresh(self):
        """Once the API server is back: ?verbose and /metrics say every watch is up again."""
        yield wait_until(self.fresh, "the stanza to report every watch up")
        metrics = yield scrape(self.http_port)
        self.assertEqual(total(metrics, "kubernetai_stanza_stale_seconds"), 0)
        self.assertEqual(total(metrics, "kubernetai_stanza_synced"), 1)

    @defer.inlineCallbacks
    def fresh(self):
        code, _, body = yield get(self.http_port, "/ready?verbose")
        (stanza,) = json.loads(body)["stanzas"]
        self.assertEqual(code, 200)
        return stanza["stale_since"] is None and all(watch["up"] for watch in stanza["watches"])

    @defer.inlineCallbacks
    def converged(self, wanted: dict[str, tuple[str, frozenset]]):
        """Wait until every name answers as C{wanted}; fail after CONVERGENCE_TIMEOUT."""
        deadline = reactor.seconds() + CONVERGENCE_TIMEOUT
        for name, answer in wanted.items():
            while True:
                reply = yield query(self.dns_port, name, "A")
                if answer_of(reply, dns.rdatatype.A) == answer:
                    break
                self.assertLess(reactor.seconds(), deadline, f"{name} never answered {answer}")
                yield sleep(0.1)

    # The API server's side

    def churn(self) -> dict[str, tuple[str, frozenset]]:
        self.phase += 1
        return churn(self.api, self.phase - 1)

    def all_watching(self):
        return wait_until(lambda: self.api.open_watches == WATCHES, "every watch to be open", CONVERGENCE_TIMEOUT)

    @defer.inlineCallbacks
    def settle(self):
        """Every watch open for longer than the backoff's cap, so that the next failure starts it afresh."""
        yield self.all_watching()
        yield sleep(Backoff().cap + 1)

    def api_lists(self) -> int:
        return sum(count for (verb, _), count in self.api.counts.items() if verb == "list")

    def api_watches(self) -> int:
        return sum(count for (verb, _), count in self.api.counts.items() if verb == "watch")

