# -*- test-case-name: tests.test_forward,tests.test_flood -*-
"""
One upstream DNS server as forward sees it (CoreDNS's plugin/pkg/proxy):
exchanges over UDP, TCP or TLS, TCP and TLS connections kept for reuse
until they have been idle for C{expire}, and a health probe that runs while
the upstream is failing.

Each exchange uses a fresh random query ID; each UDP exchange a fresh
connected socket, so a fresh random source port.  Only a reply whose ID and
question match what was asked is accepted: anything else is ignored, and
counted by reason (C{id}, C{question}, C{malformed}) in the proxy's
C{rejected}.  A datagram from any address or port but the upstream's is
not even seen: the kernel drops it for a connected socket, so it cannot be
counted.  A TCP stream with a length prefix no reply can have is cut.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass

from twisted.internet import defer, protocol
from twisted.internet.interfaces import IReadDescriptor
from twisted.names import dns
from zope.interface import implementer

from kubernetai.dnsnames import rcode_name
from kubernetai.message import StreamError, frame, split_stream
from kubernetai.metrics import TIME_BUCKETS, Counts, Histograms
from kubernetai.upstreamreply import decode_reply

HEALTH_CHECK_TIMEOUT = 1.0


class UpstreamError(Exception):
    """An upstream did not answer in time, refused, closed the connection, or sent garbage."""


class CachedConnectionClosed(UpstreamError):
    """A reused connection turned out closed by the upstream: try a fresh one."""


@dataclass(frozen=True)
class Address:
    """Where an upstream is, and how to talk to it: C{dns} (UDP/TCP) or C{tls}."""

    host: str
    port: int
    transport: str = "dns"
    server_name: str | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "tls://" if self.transport == "tls" else ""
        return f"{scheme}{host}:{self.port}"


class RandomIds:
    """Query IDs from the system's random source, read C{batch} at a time: one read a query cost a
    system call each."""

    def __init__(self, batch: int = 2048) -> None:
        self.batch = batch
        self.ids: list[int] = []

    def next(self) -> int:
        if not self.ids:
            self.ids = list(struct.unpack(f"!{self.batch}H", os.urandom(2 * self.batch)))
        return self.ids.pop()


_ids = RandomIds()


def with_new_id(packet: bytes) -> tuple[int, bytes]:
    """C{packet} with a fresh random query ID, and that ID."""
    query_id = _ids.next()
    return query_id, query_id.to_bytes(2, "big") + packet[2:]


def checked_reply(packet: bytes, query_id: int, question: dns.Query) -> tuple[dns.Message | None, str | None]:
    """(the reply, None) when C{packet} answers our query: a response with the same ID, one question,
    same name (any case), type and class; else (None, why not: C{malformed}, C{id} or C{question})."""
    try:
        reply = decode_reply(packet)
    except Exception:
        return None, "malformed"
    if not reply.answer:
        return None, "malformed"
    if reply.id != query_id:
        return None, "id"
    asked = reply.queries[0] if len(reply.queries) == 1 else None
    if asked is None or (asked.type, asked.cls, asked.name.name.lower()) != (
            question.type, question.cls, question.name.name.lower()):
        return None, "question"
    return reply, None


@implementer(IReadDescriptor)
class _DatagramExchange:
    """One query over a connected UDP socket of its own, read straight from the reactor: C{result} fires
    with the matching reply, or fails with UpstreamError (on a socket error, or once C{timeout} has
    passed); either way, or when it is cancelled, the socket closes and the timer stops."""

    def __init__(self, proxy: Proxy, query_id: int, question: dns.Query, timeout: float) -> None:
        self.proxy = proxy
        self.reactor = proxy.reactor
        self.address = proxy.address
        self.rejected = proxy.rejected
        self.started = self.reactor.seconds()
        self.query_id = query_id
        self.question = question
        self.socket: socket.socket | None = None
        self.result = defer.Deferred(lambda _: self.close())
        self.timer = self.reactor.callLater(timeout, self.fail, f"read udp {self.address}: i/o timeout")

    def send(self, packet: bytes) -> None:
        family = socket.AF_INET6 if ":" in self.address.host else socket.AF_INET
        try:
            # Out of file descriptors under a flood, say: this exchange fails, the daemon goes on.
            self.socket = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
            self.socket.connect((self.address.host, self.address.port))
            self.socket.send(packet)
        except OSError as err:
            # Later, not now: forward's next attempt runs from this failure's callback, not inside it.
            self.reactor.callLater(0, self.fail, f"write udp {self.address}: {err.strerror or err}")
            return
        self.reactor.addReader(self)

    def fileno(self) -> int:
        return self.socket.fileno()

    def doRead(self) -> None:
        while self.socket is not None:
            try:
                datagram = self.socket.recv(65535)
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                self.fail(f"read udp {self.address}: connection refused")
                return
            except OSError as err:
                self.fail(f"read udp {self.address}: {err.strerror or err}")
                return
            reply, rejection = checked_reply(datagram, self.query_id, self.question)
            if reply is not None:
                self.close()
                self.result.callback(self.proxy._timed(reply, self.started))
            else:
                self.rejected.inc((rejection,))

    def fail(self, message: str) -> None:
        if not self.result.called:
            self.close()
            self.result.errback(UpstreamError(message))

    def close(self) -> None:
        if self.timer.active():
            self.timer.cancel()
        if self.socket is not None:
            self.reactor.removeReader(self)
            self.socket.close()
            self.socket = None

    def connectionLost(self, reason) -> None:
        # The reactor drops a socket that reports an error without data (an ICMP port unreachable).
        if self.socket is None:
            return
        code = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        cause = "connection refused" if code == errno.ECONNREFUSED else os.strerror(code) if code else reason.value
        self.fail(f"read udp {self.address}: {cause}")

    def logPrefix(self) -> str:
        return "forward"


class _StreamConnection(protocol.Protocol):
    """A TCP or TLS connection to an upstream, used for one exchange at a time."""

    def __init__(self, rejected: Counts) -> None:
        self.rejected = rejected
        self.buffer = b""
        self.waiting: tuple[int, dns.Query, defer.Deferred] | None = None
        self.connected_at: float = 0.0
        self.last_used: float = 0.0
        self.ready: defer.Deferred = defer.Deferred()
        self.closed: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.ready.callback(self)

    def exchange(self, packet: bytes, query_id: int, question: dns.Query) -> defer.Deferred:
        result: defer.Deferred = defer.Deferred()
        self.waiting = (query_id, question, result)
        self.transport.write(frame(packet))
        return result

    def dataReceived(self, data: bytes) -> None:
        try:
            replies, self.buffer = split_stream(self.buffer + data)
        except StreamError:
            self.rejected.inc(("malformed",))
            self.transport.abortConnection()
            return
        for packet in replies:
            if self.waiting is None:
                continue
            query_id, question, result = self.waiting
            reply, rejection = checked_reply(packet, query_id, question)
            if reply is None:
                self.rejected.inc((rejection,))
                continue
            self.waiting = None
            result.callback(reply)

    def connectionLost(self, reason) -> None:
        self.closed.callback(None)
        if not self.ready.called:
            self.ready.errback(reason)
        if self.waiting is not None:
            _, _, result = self.waiting
            self.waiting = None
            # Not when the exchange timed out, and then closed the connection.
            if not result.called:
                result.errback(CachedConnectionClosed(f"connection closed: {reason.value}"))


class _StreamFactory(protocol.ClientFactory):
    noisy = False

    def __init__(self, rejected: Counts) -> None:
        self.connection = _StreamConnection(rejected)

    def buildProtocol(self, addr):
        return self.connection

    def clientConnectionFailed(self, connector, reason) -> None:
        if not self.connection.ready.called:
            self.connection.ready.errback(reason)


class Proxy:
    """One upstream: exchanges, reused stream connections, failure count and health probe."""

    def __init__(self, address: Address, reactor, tls_options=None, expire: float = 10.0,
                 max_idle: int = 0, max_age: float = 0.0) -> None:
        self.address = address
        self.reactor = reactor
        self.tls_options = tls_options
        self.expire = expire
        self.max_idle = max_idle
        self.max_age = max_age
        self.fails = 0
        self.probing = False
        self.probe_wakeup = None
        self.probe_in_flight: defer.Deferred | None = None
        self.idle: list[_StreamConnection] = []
        self.rejected = Counts("", "", ("reason",))
        self.healthcheck_failures = 0
        self.durations = Histograms("", "", ("rcode",), TIME_BUCKETS)
        self.connection_reuse = Counts("", "", ("result", "proto"))

    def down(self, max_fails: int) -> bool:
        """Whether health probes have failed more than C{max_fails} times in a row (0: never down)."""
        return max_fails > 0 and self.fails > max_fails

    def exchange(self, packet: bytes, question: dns.Query, over_tcp: bool, timeout: float) -> defer.Deferred:
        """Ask C{packet}; a Deferred firing with the matching reply Message, or failing with UpstreamError."""
        if self.address.transport == "tls" or over_tcp:
            result = defer.ensureDeferred(self._exchange_stream(packet, question, timeout))
            return result.addCallback(self._timed, self.reactor.seconds())
        return self._exchange_datagram(packet, question, timeout)

    def _timed(self, reply: dns.Message, started: float) -> dns.Message:
        self.durations.observe((rcode_name(reply.rCode),), self.reactor.seconds() - started)
        return reply

    def _exchange_datagram(self, packet: bytes, question: dns.Query, timeout: float) -> defer.Deferred:
        query_id, packet = with_new_id(packet)
        exchange = _DatagramExchange(self, query_id, question, timeout)
        exchange.send(packet)
        return exchange.result

    async def _exchange_stream(self, packet: bytes, question: dns.Query, timeout: float) -> dns.Message:
        query_id, packet = with_new_id(packet)
        while True:
            connection = self._take_idle()
            reused = connection is not None
            proto = "tcp-tls" if self.address.transport == "tls" else "tcp"
            self.connection_reuse.inc(("hits" if reused else "misses", proto))
            if connection is None:
                connection = await self._connect(timeout)
            pending = connection.exchange(packet, query_id, question)
            waited = _settle_within(self.reactor, pending, timeout, f"read tcp {self.address}: i/o timeout",
                                    lambda: None)
            try:
                reply = await waited
            except CachedConnectionClosed:
                if reused:
                    continue
                raise
            except UpstreamError:
                connection.transport.abortConnection()
                raise
            self._give_back(connection)
            return reply

    async def _connect(self, timeout: float) -> _StreamConnection:
        factory = _StreamFactory(self.rejected)
        host, port = self.address.host, self.address.port
        if self.tls_options is not None:
            self.reactor.connectSSL(host, port, factory, self.tls_options, timeout=timeout)
        else:
            self.reactor.connectTCP(host, port, factory, timeout=timeout)
        try:
            connection = await factory.connection.ready
        except Exception as err:
            raise UpstreamError(f"dial tcp {self.address}: {getattr(err, 'value', err)}") from None
        connection.connected_at = self.reactor.seconds()
        return connection

    def _take_idle(self) -> _StreamConnection | None:
        now = self.reactor.seconds()
        while self.idle:
            connection = self.idle.pop()
            fresh = now - connection.last_used < self.expire or self.expire == 0
            young = not self.max_age or now - connection.connected_at < self.max_age
            if fresh and young and connection.transport is not None and connection.connected:
                return connection
            connection.transport.loseConnection()
        return None

    def _give_back(self, connection: _StreamConnection) -> None:
        if self.expire == 0 or (self.max_idle and len(self.idle) >= self.max_idle):
            connection.transport.loseConnection()
            return
        connection.last_used = self.reactor.seconds()
        self.idle.append(connection)

    def close_idle(self, older_than: float = 0.0) -> None:
        """Close the kept connections idle for C{older_than} seconds or more (all by default)."""
        now = self.reactor.seconds()
        keep = []
        for connection in self.idle:
            if now - connection.last_used >= older_than:
                connection.transport.loseConnection()
            else:
                keep.append(connection)
        self.idle = keep

    def healthcheck(self, probe: bytes, interval: float) -> None:
        """Start probing the upstream, unless a probe runs: every C{interval} until it answers."""
        if self.probing:
            return
        self.probing = True
        defer.ensureDeferred(self._probe_until_healthy(probe, interval))

    async def _probe_until_healthy(self, probe: bytes, interval: float) -> None:
        question = dns.Message()
        question.fromStr(probe)
        while self.probing:
            self.probe_in_flight = self.exchange(probe, question.queries[0], False, HEALTH_CHECK_TIMEOUT)
            try:
                await self.probe_in_flight
            except defer.CancelledError:
                return
            except UpstreamError:
                self.fails += 1
                self.healthcheck_failures += 1
                wakeup: defer.Deferred = defer.Deferred()
                self.probe_wakeup = self.reactor.callLater(interval, wakeup.callback, None)
                await wakeup
                continue
            self.fails = 0
            self.probing = False

    def stop(self) -> defer.Deferred:
        """Stop probing and drop kept connections; fires once they are closed."""
        self.probing = False
        if self.probe_wakeup is not None and self.probe_wakeup.active():
            self.probe_wakeup.cancel()
        if self.probe_in_flight is not None and not self.probe_in_flight.called:
            self.probe_in_flight.cancel()
        idle, self.idle = self.idle, []
        for connection in idle:
            connection.transport.abortConnection()
        return defer.gatherResults([connection.closed for connection in idle])


def health_probe(domain: str, recursion_desired: bool) -> bytes:
    """The probe CoreDNS sends: C{DOMAIN IN NS}, RD as configured."""
    message = dns.Message(recDes=int(recursion_desired))
    message.addQuery(domain.rstrip(".").encode(), dns.NS, dns.IN)
    return message.toStr()


def _settle_within(reactor, result: defer.Deferred, timeout: float, message: str, cleanup) -> defer.Deferred:
    """C{result}, failed with C{message} if it has not fired in C{timeout} seconds; C{cleanup} runs either way."""

    def timed_out(_cancelled, _timeout):
        raise UpstreamError(message)

    def finish(outcome):
        cleanup()
        return outcome

    return result.addTimeout(timeout, reactor, onTimeoutCancel=timed_out).addBoth(finish)
