"""
Floods and abusive clients over real sockets: a random-subdomain flood
leaves every table within its bound and memory flat; forward's
max_concurrent caps what a flood holds upstream; replies with a wrong ID,
question or source are not taken (and counted where they can be seen);
query IDs and source ports toward upstreams are random; and TCP clients
that trickle bytes, never read, pipeline too much or send impossible
lengths are cut off while other clients are served.
"""

import collections
import itertools
import select
import socket

import dns.message
import dns.rcode
from twisted.internet import defer, task
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from kubernetai.plugins.forward.handler import ForwardService
from kubernetai.server import MAX_TCP_QUERY_SIZE
from kubernetai.apiserver.server import ApiServer
from tests.support import FakeUpstream, query, rcode_of, start_daemon, wait_until
from tests.test_forward import forwarding
from tests.test_health_ready import Running
from tests.test_prometheus import scrape, value

FLOOD_SIZE = 20000
CACHE_CAPACITY = 1024
READY_LIMIT = 1000
MAX_CONCURRENT = 10
# What a second flood as big as the first may add to the process: a few hundred KB is what it adds,
# and keeping a fraction of its names (as an unbounded table would) adds several MB.
MEMORY_GROWTH_BOUND = 4 * 2**20
WEB = ("web.default.svc.cluster.local", "10.0.0.1")
WWW = ("www.example.org", "192.0.2.80")

FLOODED = """\
cluster.local:0 {{
    bind 127.0.0.1
    prometheus 127.0.0.1:0
    cache {{
        success {capacity}
        denial {capacity}
    }}
    kubernetai cluster.local {{
        endpoint {api}
        pods insecure
    }}
}}
wild.example:0 {{
    bind 127.0.0.1
    hosts {{
        192.0.2.1 *.wild.example
    }}
}}
.:0 {{
    bind 127.0.0.1
    forward . 127.0.0.1:{upstream}
}}
slow.example:0 {{
    bind 127.0.0.1
    forward . 127.0.0.1:{silent} {{
        max_concurrent {max_concurrent}
        max_connect_attempts 1
        read_timeout 500ms
    }}
}}
"""


def random_subdomains(start: int, count: int):
    """C{count} names no one asked before, spread over the flooded daemon's zones: pod addresses
    (cached answers), services (denials given alike) and endpoints of a service (cached denials)
    of cluster.local, wild.example (replies ready to resend) and example.org (forwarded, NXDOMAIN)."""
    for index in range(start, start + count):
        label = f"r{index}"
        yield (
            f"10-{index >> 16 & 255}-{index >> 8 & 255}-{index & 255}.default.pod.cluster.local",
            f"{label}.default.svc.cluster.local",
            f"{label}.web.default.svc.cluster.local",
            f"{label}.wild.example",
            f"{label}.example.org",
        )[index % 5]


def flood(port: int, names, window: int = 100, patience: float = 1.0) -> collections.Counter:
    """Query C{names} over one UDP socket as fast as replies come back, at most C{window} unanswered;
    the rcodes of the replies, and C{lost} for the queries none came back for within C{patience}."""
    replies: collections.Counter = collections.Counter()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        sock.settimeout(patience)
        waiting = 0
        for query_id, name in zip(itertools.cycle(range(65536)), names):
            sock.send(dns.message.make_query(name, "A", id=query_id).to_wire())
            waiting += 1
            while waiting >= window:
                waiting -= _receive(sock, replies, waiting)
        while waiting:
            waiting -= _receive(sock, replies, waiting)
    return replies


def _receive(sock: socket.socket, replies: collections.Counter, waiting: int) -> int:
    """Count one reply; after a silence, give up on all C{waiting}; how many were settled."""
    try:
        reply = sock.recv(65535)
    except socket.timeout:
        replies["lost"] += waiting
        return waiting
    replies[dns.rcode.to_text(reply[3] & 0xF)] += 1
    return 1


def resident_bytes() -> int:
    """This process's resident set size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def forget_queries(upstream: FakeUpstream) -> None:
    for kept in (upstream.queries, upstream.flags, upstream.origins):
        kept.clear()


def addresses(reply) -> list[str]:
    return sorted(item.address for rrset in reply.answer for item in rrset)


class RandomSubdomainFloodTests(unittest.TestCase):
    """
    Tens of thousands of unique names through cache, a cluster.local stanza
    with pods insecure, hosts with a wildcard and forward: a cluster whose
    API server knows default/web, an upstream that knows www.example.org
    only, and one that never answers behind max_concurrent.
    """

    @defer.inlineCallbacks
    def setUp(self):
        api = ApiServer()
        api.start()
        self.addCleanup(api.stop)
        api.namespace("default")
        api.service("default", "web", cluster_ips=[WEB[1]], ports=[{"name": "http", "port": 80}])
        self.upstream = FakeUpstream({(WWW[0] + ".", "A"): [WWW[1]]})
        self.silent = FakeUpstream()
        self.silent.silent = True
        self.running = Running(self, FLOODED.format(
            capacity=CACHE_CAPACITY, api=api.url, upstream=self.upstream.start(self),
            silent=self.silent.start(self), max_concurrent=MAX_CONCURRENT))
        self.port = yield self.running.dns_port()
        (self.table,) = self.running.dns.tables.values()
        self.table.ready_limit = READY_LIMIT

    @defer.inlineCallbacks
    def assertStillAnswers(self):
        web = yield query(self.port, WEB[0], "A")
        www = yield query(self.port, WWW[0], "A")
        self.assertEqual((addresses(web), addresses(www)), ([WEB[1]], [WWW[1]]))

    @defer.inlineCallbacks
    def test_flood_leaves_every_table_within_its_bound(self):
        before = yield scrape(self.running)
        replies = yield deferToThread(flood, self.port, random_subdomains(0, FLOOD_SIZE))
        self.assertEqual(replies["lost"], 0, replies)
        self.assertEqual(replies["NOERROR"] + replies["NXDOMAIN"], FLOOD_SIZE, replies)
        after = yield scrape(self.running)
        for kind in ("success", "denial"):
            held = value(after, "coredns_cache_entries", type=kind)
            self.assertTrue(CACHE_CAPACITY / 2 < held <= CACHE_CAPACITY, (kind, held))
        self.assertGreater(value(after, "coredns_cache_evictions_total", type="success", zones="cluster.local."), 0)
        self.assertLessEqual(self.table.kept_replies(), READY_LIMIT)
        self.assertGreater(self.table.kept_replies(), 0, "the wildcard's replies were kept to resend")
        self.assertEqual(len(self.table.alike_templates), 1, "the services' denials were given alike")
        new_series = {name for name, _ in after} - {name for name, _ in before}
        self.assertLess(len(after) - len(before), 100, f"no metric is labelled by name: {new_series}")
        yield self.assertStillAnswers()

    @defer.inlineCallbacks
    def test_second_flood_adds_no_memory(self):
        # What the upstream keeps of the queries it got is the test's memory, not the daemon's.
        forget = task.LoopingCall(forget_queries, self.upstream)
        forget.start(0.1)
        self.addCleanup(forget.stop)
        yield deferToThread(flood, self.port, random_subdomains(0, FLOOD_SIZE))
        warm = resident_bytes()
        replies = yield deferToThread(flood, self.port, random_subdomains(FLOOD_SIZE, FLOOD_SIZE))
        grown = resident_bytes() - warm
        self.assertEqual(replies["lost"], 0, replies)
        self.assertLess(grown, MEMORY_GROWTH_BOUND, f"{grown} bytes more after {FLOOD_SIZE} new names")
        yield self.assertStillAnswers()

    @defer.inlineCallbacks
    def test_max_concurrent_caps_what_a_flood_holds_upstream(self):
        forwards = [forward for service in self.running.root.running_services
                    if isinstance(service, ForwardService) for forward in service.forwards]
        peak = []
        sampler = task.LoopingCall(lambda: peak.append(max(forward.in_flight for forward in forwards)))
        sampler.start(0.01)
        names = (f"r{index}.slow.example" for index in range(FLOOD_SIZE // 10))
        replies = yield deferToThread(flood, self.port, names, 100, 0.5)
        sampler.stop()
        yield wait_until(lambda: not any(forward.in_flight for forward in forwards), "the slots freed")
        self.assertLessEqual(max(peak), MAX_CONCURRENT)
        self.assertEqual(max(peak), MAX_CONCURRENT, "the flood filled every slot")
        self.assertGreater(replies["REFUSED"], FLOOD_SIZE // 20, replies)
        metrics = yield scrape(self.running)
        self.assertEqual(value(metrics, "coredns_forward_max_concurrent_rejects_total"), replies["REFUSED"])
        yield self.assertStillAnswers()


def rejected_replies(samples: dict, upstream_port: int) -> dict[str, float]:
    """kubernetai_forward_rejected_replies_total for one upstream, by reason."""
    to = ("to", f"127.0.0.1:{upstream_port}")
    return {dict(labels)["reason"]: count for (name, labels), count in samples.items()
            if name == "kubernetai_forward_rejected_replies_total" and to in labels}


class UpstreamHygieneTests(unittest.TestCase):
    """Only the upstream's own answer to our question is taken; queries toward it are unpredictable."""

    @defer.inlineCallbacks
    def ask_liar(self, lie: str, *more_upstreams: FakeUpstream):
        """Ask www.example.org through a liar (then C{more_upstreams}); (reply, rejected replies by reason, liar)."""
        liar = FakeUpstream({(WWW[0] + ".", "A"): [WWW[1]]})
        liar.lie = lie
        ports = [liar.start(self)] + [upstream.start(self) for upstream in more_upstreams]
        running = Running(self, forwarding(*ports, options="read_timeout 300ms\n        policy sequential",
                                           extra="prometheus 127.0.0.1:0"))
        port = yield running.dns_port()
        reply = yield query(port, WWW[0], "A")
        samples = yield scrape(running)
        return reply, rejected_replies(samples, ports[0]), liar

    @defer.inlineCallbacks
    def test_reply_with_a_wrong_id_is_counted_and_not_taken(self):
        reply, rejected, liar = yield self.ask_liar("id")
        self.assertEqual(rcode_of(reply), "SERVFAIL")
        self.assertEqual(rejected, {"id": len(liar.queries)})
        self.assertGreater(len(liar.queries), 0)

    @defer.inlineCallbacks
    def test_reply_for_another_question_is_counted_and_not_taken(self):
        reply, rejected, liar = yield self.ask_liar("question")
        self.assertEqual(rcode_of(reply), "SERVFAIL")
        self.assertEqual(rejected, {"question": len(liar.queries)})

    @defer.inlineCallbacks
    def test_reply_from_another_port_never_reaches_the_exchange(self):
        reply, rejected, liar = yield self.ask_liar("source")
        self.assertEqual(rcode_of(reply), "SERVFAIL")
        self.assertGreater(len(liar.queries), 0, "the liar answered each query from another port")
        self.assertEqual(rejected, {}, "the kernel dropped them: there was nothing to count")

    @defer.inlineCallbacks
    def test_the_next_upstream_answers_after_a_liar(self):
        reply, rejected, liar = yield self.ask_liar("id", FakeUpstream({(WWW[0] + ".", "A"): [WWW[1]]}))
        self.assertEqual(addresses(reply), [WWW[1]])
        self.assertEqual(rejected, {"id": len(liar.queries)}, "its answer, and those to health probes")

    @defer.inlineCallbacks
    def test_query_ids_and_source_ports_are_random(self):
        upstream = FakeUpstream()
        port = start_daemon(self, forwarding(upstream.start(self)))
        for index in range(50):
            yield query(port, f"q{index}.example.org", "A")
        ids = [query_id for query_id, _ in upstream.origins]
        ports = [source[1] for _, source in upstream.origins]
        self.assertEqual(len(ids), 50)
        self.assertGreaterEqual(len(set(ids)), 47, ids)
        self.assertGreaterEqual(len(set(ports)), 45, ports)
        for drawn in (ids, ports):
            steps = collections.Counter((later - earlier) % 65536 for earlier, later in zip(drawn, drawn[1:]))
            self.assertLess(max(steps.values()), 5, f"not a sequence: {drawn}")


BIG_ANSWER = [f"10.0.{index // 250}.{index % 250 + 1}" for index in range(200)]
TCP_CLIENTS = """\
whoami.example:0 {{
    bind 127.0.0.1
    whoami
}}
big.example:0 {{
    bind 127.0.0.1
    hosts {{
{entries}
    }}
}}
slow.example:0 {{
    bind 127.0.0.1
    forward . 127.0.0.1:{silent} {{
        max_connect_attempts 1
        read_timeout 1s
    }}
}}
"""


def framed(name: str, **make_query_args) -> bytes:
    wire = dns.message.make_query(name, "A", **make_query_args).to_wire(max_size=65535)
    return len(wire).to_bytes(2, "big") + wire


def trickle(port: int, stream: bytes, pause: float) -> int:
    """Send C{stream} a byte every C{pause} seconds; how many were sent when the server closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for sent in range(len(stream)):
            try:
                sock.sendall(stream[sent : sent + 1])
            except OSError:
                return sent
            readable, _, _ = select.select([sock], [], [], pause)
            if readable and sock.recv(65535) == b"":
                return sent + 1
    return len(stream)


def push_unread(port: int, query: bytes, count: int) -> tuple[socket.socket, int]:
    """Pipeline C{count} copies of C{query} over a connection that never reads, until the server
    takes no more; the (open) socket and how many were sent."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    stream, sent = query * count, 0
    while sent < len(stream):
        _, writable, _ = select.select([], [sock], [], 0.5)
        if not writable:
            break
        sent += sock.send(stream[sent : sent + 65536])
    return sock, sent // len(query)


def closed_at_once(port: int, data: bytes):
    """Whether the server closes the connection right after C{data} (within 5 s): True, else the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        received = sock.recv(65535)
    return received == b"" or received


class SlowClientTests(unittest.TestCase):
    """
    TCP clients that trickle, never read, pipeline past the cap, or send
    impossible lengths are cut off, and meanwhile others are answered.
    """

    @defer.inlineCallbacks
    def setUp(self):
        self.silent = FakeUpstream()
        self.silent.silent = True
        entries = "\n".join(f"        {address} big.example" for address in BIG_ANSWER)
        self.running = Running(self, TCP_CLIENTS.format(entries=entries, silent=self.silent.start(self)))
        self.port = yield self.running.dns_port()
        (self.factory,) = [port.factory for port in self.running.dns.ports if hasattr(port, "factory")]

    @defer.inlineCallbacks
    def assertOthersServed(self):
        for tcp in (False, True):
            reply = yield query(self.port, "whoami.example", "A", tcp=tcp)
            self.assertEqual(rcode_of(reply), "NOERROR")

    @defer.inlineCallbacks
    def test_a_query_trickled_a_byte_at_a_time_is_cut_off(self):
        self.factory.idle_timeout = 0.5
        stream = framed("whoami.example")
        trickling = deferToThread(trickle, self.port, stream, 0.1)
        yield self.assertOthersServed()
        sent = yield trickling
        self.assertLess(sent, len(stream), "closed before the query was whole, though no byte came late")

    @defer.inlineCallbacks
    def test_a_client_that_never_reads_is_read_no_more_then_dropped(self):
        self.factory.idle_timeout = 2.0
        big = yield query(self.port, "big.example", "A", tcp=True)
        self.assertEqual(len(big.answer[0]), len(BIG_ANSWER))
        count = 20000
        sock, sent = yield deferToThread(push_unread, self.port, framed("big.example", use_edns=0, pad=2048), count)
        self.addCleanup(sock.close)
        self.assertLess(sent, count // 4, "the server stopped reading once its replies piled up")
        self.assertEqual(self.factory.open_connections, 1)
        yield self.assertOthersServed()
        yield wait_until(lambda: self.factory.open_connections == 0, "the stuck connection dropped")

    @defer.inlineCallbacks
    def test_queries_past_the_pipelining_cap_wait_unread(self):
        self.factory.max_pipelined = 5
        forwards = [forward for service in self.running.root.running_services
                    if isinstance(service, ForwardService) for forward in service.forwards]
        stream = b"".join(framed(f"q{index}.slow.example") for index in range(20))
        client = socket.create_connection(("127.0.0.1", self.port))
        client.sendall(stream)
        asked = lambda: {name for name, _, _ in self.silent.queries}  # noqa: E731
        yield wait_until(lambda: len(asked()) >= 5, "five queries forwarded")
        yield self.assertOthersServed()
        self.assertEqual(len(asked()), 5, "the sixth waits until one of the five is answered")
        client.close()
        yield wait_until(lambda: not any(forward.in_flight for forward in forwards), "the forwarded queries over")

    @defer.inlineCallbacks
    def test_a_length_no_query_can_have_closes_the_connection(self):
        for length in (0, 11, MAX_TCP_QUERY_SIZE + 1, 65535):
            closed = yield deferToThread(closed_at_once, self.port, length.to_bytes(2, "big") + bytes(12))
            self.assertIs(closed, True, length)
            yield self.assertOthersServed()
        largest = framed("whoami.example", use_edns=0, pad=MAX_TCP_QUERY_SIZE)
        self.assertEqual(len(largest), 2 + MAX_TCP_QUERY_SIZE)
        reply = yield deferToThread(closed_at_once, self.port, largest)
        self.assertEqual(dns.message.from_wire(reply[2:]).rcode(), dns.rcode.NOERROR)
