# -*- test-case-name: tests.test_forward -*-
"""
Exchanging one DNS message with an upstream server over UDP or TCP.

Each exchange uses a fresh random ID and a fresh UDP socket (so a fresh
random source port), and accepts only a reply whose ID and question match
what was asked: anything else is ignored and counted, never answered with.
"""

from __future__ import annotations

import secrets

from twisted.internet import defer, protocol
from twisted.internet.interfaces import IReactorTCP, IReactorUDP
from twisted.names import dns

from kubernetai.message import frame, split_stream

class UpstreamError(Exception):
    """An upstream did not answer in time, refused the connection, or sent garbage."""


def with_new_id(packet: bytes) -> tuple[int, bytes]:
    """C{packet} with a fresh random query ID, and that ID."""
    query_id = secrets.randbits(16)
    return query_id, query_id.to_bytes(2, "big") + packet[2:]


def matches(reply: dns.Message, query_id: int, question: dns.Query) -> bool:
    """Whether C{reply} answers our query: same ID, one question, same name (any case), type, class."""
    if reply.id != query_id or not reply.answer or len(reply.queries) != 1:
        return False
    asked = reply.queries[0]
    return (
        asked.type == question.type
        and asked.cls == question.cls
        and asked.name.name.lower() == question.name.name.lower()
    )


def parse_reply(packet: bytes) -> dns.Message | None:
    """The decoded reply, or None when it does not decode."""
    reply = dns.Message()
    try:
        reply.fromStr(packet)
    except Exception:
        return None
    return reply


class _UDPExchange(protocol.DatagramProtocol):
    noisy = False

    def __init__(self, server: str, query_id: int, question: dns.Query, result: defer.Deferred) -> None:
        self.server = server
        self.query_id = query_id
        self.question = question
        self.result = result
        self.mismatched = 0

    def datagramReceived(self, datagram: bytes, address) -> None:
        reply = parse_reply(datagram)
        if reply is None or not matches(reply, self.query_id, self.question):
            self.mismatched += 1
            return
        if not self.result.called:
            self.result.callback(reply)

    def connectionRefused(self) -> None:
        if not self.result.called:
            self.result.errback(UpstreamError(f"read udp {self.server}: connection refused"))

    def stopProtocol(self) -> None:
        # The reactor closes a connected UDP socket on an ICMP error (port unreachable).
        self.connectionRefused()


def exchange_udp(reactor, host: str, port: int, packet: bytes, question: dns.Query, timeout: float):
    """Send C{packet} over UDP; a Deferred firing with the matching reply Message."""
    query_id, packet = with_new_id(packet)
    result: defer.Deferred = defer.Deferred()
    exchange = _UDPExchange(f"{host}:{port}", query_id, question, result)
    interface = "::" if ":" in host else ""
    udp = IReactorUDP(reactor).listenUDP(0, exchange, interface=interface)
    udp.connect(host, port)
    udp.write(packet)
    return _settle_within(reactor, result, timeout, f"read udp {host}:{port}: i/o timeout", udp.stopListening)


class _TCPExchange(protocol.Protocol):
    def __init__(self, packet: bytes, query_id: int, question: dns.Query, result: defer.Deferred) -> None:
        self.packet = packet
        self.query_id = query_id
        self.question = question
        self.result = result
        self.buffer = b""

    def connectionMade(self) -> None:
        self.transport.write(frame(self.packet))

    def dataReceived(self, data: bytes) -> None:
        packets, self.buffer = split_stream(self.buffer + data)
        for packet in packets:
            reply = parse_reply(packet)
            if reply is not None and matches(reply, self.query_id, self.question):
                if not self.result.called:
                    self.result.callback(reply)
                self.transport.loseConnection()
                return

    def connectionLost(self, reason) -> None:
        if not self.result.called:
            self.result.errback(UpstreamError(f"tcp connection closed before a reply: {reason.value}"))


class _TCPExchangeFactory(protocol.ClientFactory):
    noisy = False

    def __init__(self, exchange: _TCPExchange) -> None:
        self.exchange = exchange

    def buildProtocol(self, addr):
        return self.exchange

    def clientConnectionFailed(self, connector, reason) -> None:
        if not self.exchange.result.called:
            self.exchange.result.errback(UpstreamError(f"dial tcp: {reason.value}"))


def exchange_tcp(reactor, host: str, port: int, packet: bytes, question: dns.Query, timeout: float):
    """Send C{packet} over TCP; a Deferred firing with the matching reply Message."""
    query_id, packet = with_new_id(packet)
    result: defer.Deferred = defer.Deferred()
    exchange = _TCPExchange(packet, query_id, question, result)
    connector = IReactorTCP(reactor).connectTCP(host, port, _TCPExchangeFactory(exchange), timeout=timeout)
    return _settle_within(reactor, result, timeout, f"read tcp {host}:{port}: i/o timeout", connector.disconnect)


def _settle_within(reactor, result: defer.Deferred, timeout: float, message: str, cleanup) -> defer.Deferred:
    """C{result}, failed with C{message} if it has not fired in C{timeout} seconds; C{cleanup} runs either way."""

    def time_out() -> None:
        if not result.called:
            result.errback(UpstreamError(message))

    timer = reactor.callLater(timeout, time_out)

    def finish(outcome):
        if timer.active():
            timer.cancel()
        cleanup()
        return outcome

    return result.addBoth(finish)
