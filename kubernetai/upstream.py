# -*- test-case-name: tests.test_forward -*-
"""
Exchanging one DNS message with an upstream server over UDP or TCP.

Each exchange uses a fresh random ID and a fresh UDP socket (so a fresh
random source port), and accepts only a reply whose ID and question match
what was asked: anything else is ignored and counted, never answered with.
"""

from __future__ import annotations

import secrets
import struct

from twisted.internet import defer, protocol
from twisted.internet.interfaces import IReactorTCP, IReactorUDP
from twisted.names import dns

TCP_LENGTH = struct.Struct("!H")


class UpstreamError(Exception):
    """An upstream did not answer in time, refused the connection, or sent garbage."""


def with_new_id(packet: bytes) -> tuple[int, bytes]:
    """C{packet} with a fresh random query ID, and that ID."""
    query_id = secrets.randbits(16)
    return query_id, TCP_LENGTH.pack(query_id) + packet[2:]


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
    timer = reactor.callLater(timeout, _time_out, result, f"read udp {host}:{port}: i/o timeout")

    def finish(outcome):
        if timer.active():
            timer.cancel()
        udp.stopListening()
        return outcome

    return result.addBoth(finish)


class _TCPExchange(protocol.Protocol):
    def __init__(self, packet: bytes, query_id: int, question: dns.Query, result: defer.Deferred) -> None:
        self.packet = packet
        self.query_id = query_id
        self.question = question
        self.result = result
        self.buffer = b""

    def connectionMade(self) -> None:
        self.transport.write(TCP_LENGTH.pack(len(self.packet)) + self.packet)

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= TCP_LENGTH.size:
            (length,) = TCP_LENGTH.unpack_from(self.buffer)
            if len(self.buffer) < TCP_LENGTH.size + length:
                return
            packet = self.buffer[TCP_LENGTH.size : TCP_LENGTH.size + length]
            self.buffer = self.buffer[TCP_LENGTH.size + length :]
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
    timer = reactor.callLater(timeout, _time_out, result, f"read tcp {host}:{port}: i/o timeout")

    def finish(outcome):
        if timer.active():
            timer.cancel()
        connector.disconnect()
        return outcome

    return result.addBoth(finish)


def _time_out(result: defer.Deferred, message: str) -> None:
    if not result.called:
        result.errback(UpstreamError(message))
