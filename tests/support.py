"""
What the tests share: a server block or a running daemon from a Corefile
text, a dnspython client that runs in a thread, a scriptable upstream DNS
server, and a wait for a condition.
"""

from __future__ import annotations

import os
import random
import re
import socket

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
from twisted.internet import defer, protocol, reactor, ssl, task
from twisted.internet.threads import deferToThread
from twisted.internet.error import CannotListenError
from twisted.logger import formatEvent, globalLogPublisher
from twisted.names import dns as tdns

from kubernetai.cache.entries import Entry, Table
from kubernetai.cache.rules import entry_key
from kubernetai.chain import Response, ServerConfig, build_server
from kubernetai.corefile import CorefileError, parse_corefile
from kubernetai.daemon import build_daemon
from kubernetai.message import decode_query, frame, split_stream

# How often wait_until checks its condition.
POLL_INTERVAL = 0.02


def another_python_environment(**changes: str) -> dict[str, str]:
    """The environment for a process of another Python (the system's, an installed venv's): this one's,
    less the PYTHONPATH C{trial -j} sets to its own sys.path, whose standard library that Python
    must not read (its ssl module fails to load), with C{changes}."""
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    return {**environment, **changes}


def build(text: str) -> ServerConfig:
    """The first server block of Corefile C{text}, built as the daemon builds it (nothing started)."""
    return build_server(parse_corefile(text, "Corefile")[0])


def refusal(text: str) -> str:
    """What building Corefile C{text}'s first server block says is wrong; fails the test if nothing is."""
    try:
        build(text)
    except CorefileError as error:
        return str(error)
    raise AssertionError(f"no error for {text!r}")


@defer.inlineCallbacks
def wait_until(condition, what: str, timeout: float = 10.0):
    """Check C{condition()} (true, or a Deferred firing true) until it holds; after C{timeout} seconds,
    fail the test saying it was waiting for C{what}."""
    for _ in range(int(timeout / POLL_INTERVAL)):
        if (yield condition()):
            return
        yield task.deferLater(reactor, POLL_INTERVAL, lambda: None)
    raise AssertionError(f"timed out waiting for {what}")


def one_test_per_row(table: str, rows, label=str):
    """Class decorator: for each of C{rows} a test C{test_TABLE_NN_LABEL} (C{label(row)} in letters and
    digits) calling the class's C{check_TABLE(row)}, so that a failing row hides none after it."""

    def add_tests(cls):
        for number, row in enumerate(rows):
            words = re.sub(r"[^A-Za-z0-9]+", "_", label(row)).strip("_")[:60]
            setattr(cls, f"test_{table}_{number:02d}_{words}",
                    lambda self, row=row: getattr(self, f"check_{table}")(row))
        return cls

    return add_tests


# The SOA of example.org, as the cache tests' upstream sends it with a denial (format in the TTL and minimum).
SOA_RDATA = "ns.example.org. hostmaster.example.org. 1 7200 3600 1209600 {minimum}"
SOA = "example.org. {ttl} IN SOA " + SOA_RDATA


def rr(text: str) -> tdns.RRHeader:
    """A record from a zone-file line, as twisted.names decodes it off the wire."""
    name, ttl, rdclass, rdtype, rdata = text.split(None, 4)
    message = dns.message.Message()
    message.answer.append(dns.rrset.from_text(name, int(ttl), rdclass, rdtype, rdata))
    decoded = tdns.Message()
    decoded.fromStr(message.to_wire())
    return decoded.answers[0]


def response(*answers, rcode=tdns.OK, authority=(), additional=(), truncated=False) -> Response:
    return Response(rcode=rcode, answers=[rr(line) for line in answers], authority=[rr(line) for line in authority],
                    additional=[rr(line) for line in additional], recursion_available=True, truncated=truncated)


def make_request(name, rdtype="A", do=False, cd=False):
    """The Request the server makes of a client's query."""
    message = dns.message.make_query(name, rdtype, want_dnssec=do)
    if cd:
        message.flags |= dns.flags.CD
    return decode_query(message.to_wire(), ("127.0.0.1", 5353), "udp")


def shown(reply: Response):
    """A Response's answer as (owner, TTL, rdata) lines."""
    return [(r.name.name.decode(), r.ttl, r.payload.dottedQuad() if r.type == tdns.A else str(r.payload.name))
            for r in reply.answers]


def cached(records: int, number: int = 0, stored: float = 0.0, ttl: int = 30) -> Entry:
    """A cache entry of C{records} A records, as a headless service's answer holds them."""
    owner = f"headless-{number}.ns-001.svc.cluster.local".encode()
    answers = tuple(tdns.RRHeader(owner, tdns.A, tdns.IN, ttl, tdns.Record_A(f"10.128.{number % 256}.{index % 256}", ttl),
                                  auth=True) for index in range(records))
    return Entry(tdns.OK, (answers, (), ()), False, stored, ttl)


def same_shard_keys(count, rdtype="A"):
    """Keys of C{count} names C{hostN.example.org.} that fall in one shard."""
    shards = {}
    for number in range(100000):
        key = entry_key(make_request(f"host{number}.example.org", rdtype))
        shards.setdefault(Table.shard_of(key), []).append(key)
        if len(shards[Table.shard_of(key)]) == count:
            return shards[Table.shard_of(key)]
    raise AssertionError("no shard filled")


def write_corefile(testcase, text: str) -> str:
    """A Corefile with C{text} in a fresh temporary directory; its path."""
    path = testcase.mktemp()
    with open(path, "w") as corefile:
        corefile.write(text)
    return path


def start_daemon(testcase, text: str) -> int:
    """Start the daemon of Corefile C{text} (keys on port 0, bind 127.0.0.1) with no stanza; its DNS port."""
    listening = start_daemon_listening(testcase, text)
    assert listening.called, "the daemon waits for stanzas: use start_daemon_listening"
    return listening.result


def start_daemon_service(testcase, text: str):
    """Start the daemon of Corefile C{text}; its service (stopped when the test ends)."""
    root = build_daemon(write_corefile(testcase, text)).service(reactor)
    root.startService()
    testcase.addCleanup(root.stopService)
    return root


def start_daemon_listening(testcase, text: str):
    """Start the daemon of Corefile C{text}; a Deferred firing with its DNS port once it listens."""
    dns_service = start_daemon_service(testcase, text).getServiceNamed("dns")

    def port(_):
        ports = {port for _, _, port in dns_service.addresses()}
        assert len(ports) == 1, ports
        return ports.pop()

    return dns_service.listening.addCallback(port)


def capture_logs(testcase) -> list[str]:
    """The text of every log event from now until the test ends."""
    lines: list[str] = []

    def observer(event):
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    testcase.addCleanup(globalLogPublisher.removeObserver, observer)
    return lines


def unused_port() -> int:
    """A port of 127.0.0.1 nothing listens on for UDP or TCP, below the kernel's ephemeral range: no
    socket bound to port 0 (a client's, an upstream's) takes it while a test counts on it staying
    closed, or closes it and counts on that."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as port_range:
        ephemeral_low = int(port_range.read().split()[0])
    while True:
        candidate = random.randrange(10000, max(ephemeral_low, 10001))
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with socket.socket(socket.AF_INET, kind) as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return candidate


def query(port: int, name: str, rdtype="A", tcp: bool = False, **make_query_args):
    """A Deferred firing with the daemon's answer to C{name} C{rdtype}, as a dnspython message."""
    message = dns.message.make_query(name, rdtype, **make_query_args)
    return send(port, message, tcp)


def send(port: int, message: dns.message.Message, tcp: bool = False):
    """Send a dnspython message; a Deferred firing with the reply."""
    if tcp:
        return deferToThread(dns.query.tcp, message, "127.0.0.1", timeout=5, port=port)
    return deferToThread(dns.query.udp, message, "127.0.0.1", timeout=5, port=port, ignore_trailing=True)


def send_raw_udp(port: int, packet: bytes, timeout: float = 1.0):
    """Send C{packet} over UDP; a Deferred firing with the reply bytes, or None when none came."""

    def exchange():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.sendto(packet, ("127.0.0.1", port))
            try:
                return sock.recv(65535)
            except socket.timeout:
                return None

    return deferToThread(exchange)


def rcode_of(reply: dns.message.Message) -> str:
    return dns.rcode.to_text(reply.rcode())


class FakeUpstream(protocol.DatagramProtocol):
    """
    An upstream DNS server on 127.0.0.1 (UDP and TCP, one port; or DNS over
    TLS) answering from C{records} ({(name, type): [rdata text]}), that can be
    told to be slow, silent, to truncate over UDP, to answer some names with
    another rcode (C{rcodes}), or to lie about the ID or the question, or to
    answer over UDP from another port (C{lie = "source"}).  C{origins} holds the
    ID and source address of every UDP query.
    """

    def __init__(self, records: dict[tuple[str, str], list[str]] | None = None) -> None:
        self.records = records or {}
        self.rcodes: dict[str, int] = {}
        self.delay = 0.0
        self.silent = False
        self.truncate_udp = False
        self.lie = None
        self.queries: list[tuple[str, str, str]] = []
        self.flags: list[int] = []
        self.connections = 0
        self.origins: list[tuple[int, tuple[str, int]]] = []
        self.port = None

    def start(self, testcase, port: int = 0) -> int:
        """Listen on C{port} (a free one by default) for UDP and TCP; the port."""
        while True:
            tcp = reactor.listenTCP(port, _UpstreamTCPFactory(self), interface="127.0.0.1")
            try:
                udp = reactor.listenUDP(tcp.getHost().port, self, interface="127.0.0.1")
                break
            except CannotListenError:
                tcp.stopListening()
                if port:
                    raise
                # Another process holds this number for UDP; take another free TCP port.
        testcase.addCleanup(tcp.stopListening)
        testcase.addCleanup(udp.stopListening)
        self.port = tcp.getHost().port
        return self.port

    def start_tls(self, testcase, certificate_pem: bytes, client_ca_pem: bytes | None = None) -> int:
        """Listen for DNS over TLS with C{certificate_pem} (certificate and key); the port.

        With C{client_ca_pem}, only clients with a certificate that CA signed are served.
        """
        authorities = [ssl.Certificate.loadPEM(client_ca_pem)] if client_ca_pem else []
        options = ssl.PrivateCertificate.loadPEM(certificate_pem).options(*authorities)
        tls = reactor.listenSSL(0, _UpstreamTCPFactory(self, "tls"), options, interface="127.0.0.1")
        testcase.addCleanup(tls.stopListening)
        self.port = tls.getHost().port
        return self.port

    def reply_to(self, packet: bytes, transport: str) -> bytes | None:
        """The wire reply to C{packet}, as this upstream is set to behave."""
        query_message = dns.message.from_wire(packet)
        question = query_message.question[0]
        qtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((question.name.to_text().lower(), qtype, transport))
        self.flags.append(query_message.flags)
        if self.silent:
            return None
        reply = dns.message.make_response(query_message)
        reply.flags |= dns.flags.RA
        answers = self.records.get((question.name.to_text().lower(), qtype))
        if question.name.to_text().lower() in self.rcodes:
            reply.set_rcode(self.rcodes[question.name.to_text().lower()])
        elif answers is None:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        else:
            reply.answer.append(dns.rrset.from_text_list(question.name, 30, "IN", qtype, answers))
        if self.truncate_udp and transport == "udp":
            reply.answer = []
            reply.flags |= dns.flags.TC
        if self.lie == "id":
            reply.id = (reply.id + 1) % 65536
        elif self.lie == "question":
            reply.question = [dns.rrset.RRset(dns.name.from_text("lie.example."), question.rdclass, question.rdtype)]
        return reply.to_wire(max_size=65535)

    def datagramReceived(self, datagram: bytes, address) -> None:
        self.origins.append((int.from_bytes(datagram[:2], "big"), address))
        reply = self.reply_to(datagram, "udp")
        if reply is not None:
            reactor.callLater(self.delay, self._send, reply, address)

    def _send(self, reply: bytes, address) -> None:
        if self.lie == "source":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as impostor:
                impostor.bind(("127.0.0.1", 0))
                impostor.sendto(reply, address)
        elif self.transport is not None:
            self.transport.write(reply, address)


class _UpstreamTCP(protocol.Protocol):
    def __init__(self, upstream: FakeUpstream, transport: str) -> None:
        self.upstream = upstream
        self.kind = transport
        self.buffer = b""

    def connectionMade(self) -> None:
        self.upstream.connections += 1

    def dataReceived(self, data: bytes) -> None:
        packets, self.buffer = split_stream(self.buffer + data)
        for packet in packets:
            reply = self.upstream.reply_to(packet, self.kind)
            if reply is not None:
                self.transport.write(frame(reply))


class _UpstreamTCPFactory(protocol.ServerFactory):
    noisy = False

    def __init__(self, upstream: FakeUpstream, transport: str = "tcp") -> None:
        self.upstream = upstream
        self.transport = transport

    def buildProtocol(self, addr):
        return _UpstreamTCP(self.upstream, self.transport)

