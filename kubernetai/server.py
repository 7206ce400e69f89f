# -*- test-case-name: tests.test_server,tests.test_flood -*-
"""
The DNS server: UDP and TCP listeners for every address a server block
listens on, each answering from its address's L{ZoneTable}
(L{kubernetai.answer}), repeated UDP queries from the replies kept there, and
names a stanza denies from the denial it gave another name (L{kubernetai.alike}).
"""

from __future__ import annotations

import socket
import time

from twisted.application import service
from twisted.internet import defer, protocol
from twisted.internet.error import CannotListenError
from twisted.internet.abstract import isIPv6Address
from twisted.internet.interfaces import IPushProducer, IReactorSocket, IReactorTCP
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from kubernetai.answer import ZoneTable, answer_packet, client_address
from kubernetai.chain import ServerConfig, then
from kubernetai.corefile import CorefileError
from kubernetai.message import StreamError, frame, message_at

log = Logger(namespace="kubernetai.server")

# As CoreDNS's defaults (its timeouts plugin's idle timeout); more connections than this are closed at once.
TCP_IDLE_TIMEOUT = 10.0
MAX_TCP_CONNECTIONS = 1000
# Bytes asked for each UDP socket's receive queue: about ten thousand queries.
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024
# A query needs far less (a question, an OPT record, perhaps a TSIG); replies are not limited.
MAX_TCP_QUERY_SIZE = 4096
# Queries of one connection answered at once; past it, its later queries wait unread.
MAX_PIPELINED_QUERIES = 100
# The reactor's listenTCP default, for the sockets a worker binds itself.
TCP_BACKLOG = 50


def _serves(port, table: ZoneTable) -> bool:
    """Whether a listening port answers from C{table}."""
    protocol_or_factory = getattr(port, "protocol", None) or getattr(port, "factory", None)
    return getattr(protocol_or_factory, "table", None) is table


class DNSDatagramProtocol(protocol.DatagramProtocol):
    """Answers DNS over UDP.

    Replies go straight to the socket: the address is the one the kernel gave the query, so
    Twisted's checks of it (three parsings of the address, several microseconds a reply) are
    not needed.  A reply the socket cannot take at once is lost, as a datagram may be.
    """

    noisy = False

    def __init__(self, table: ZoneTable) -> None:
        self.table = table
        self.local = None
        self.socket = None

    def startProtocol(self) -> None:
        host = self.transport.getHost()
        self.local = (host.host, host.port)
        self.socket = self.transport.getHandle()

    def stopProtocol(self) -> None:
        self.socket = None

    def datagramReceived(self, datagram: bytes, address) -> None:
        started = time.monotonic()
        ready = self.table.ready_reply(datagram)
        if ready is not None:
            reply, replays = ready
            self._send(reply, address)
            for replay in replays:
                replay(address[0], time.monotonic() - started)
            return
        alike = self.table.alike_reply(datagram)
        if alike is not None:
            reply, replays, grown = alike
            self._send(reply, address)
            for replay in replays:
                replay(address[0], time.monotonic() - started, grown)
            return
        client = client_address(address[0], address[1])
        then(answer_packet(self.table, datagram, client, "udp", self.local), self._send, address)

    def _send(self, reply: bytes | None, address) -> None:
        if reply is None or self.socket is None:
            return
        try:
            self.socket.sendto(reply, address)
        except BlockingIOError:
            pass
        except OSError as err:
            log.warn("cannot send a reply to {address}: {error}", address=address, error=err)


@implementer(IPushProducer)
class DNSStreamProtocol(protocol.Protocol, TimeoutMixin):
    """
    Answers DNS over TCP: length-prefixed messages, pipelined, answered as
    they are ready (in any order, as RFC 7766 allows).

    What one client can hold is bounded.  Each message must be complete
    within the idle timeout of the previous message or reply, however slowly
    its bytes come, so a client that trickles them is cut off.  A length
    prefix that no query can have closes the connection.  At most
    C{max_pipelined} queries are answered at once, and while the client
    leaves its replies unread (the transport's write buffer is full, and it
    pauses this protocol as its producer) nothing more is read from it.  A
    connection whose time is up is closed, and aborted, replies unsent, if
    it is still open an idle timeout later.
    """

    def __init__(self, table: ZoneTable) -> None:
        self.table = table
        self.buffer = b""
        self.answering = 0
        self.write_blocked = False
        self.reading_paused = False
        self.draining = False
        self.counted = False
        self.abort_call = None

    def connectionMade(self) -> None:
        if self.factory.open_connections >= self.factory.max_connections:
            self.transport.loseConnection()
            return
        self.factory.open_connections += 1
        self.counted = True
        self.transport.registerProducer(self, True)
        self.setTimeout(self.factory.idle_timeout)

    def connectionLost(self, reason) -> None:
        self.setTimeout(None)
        if self.abort_call is not None and self.abort_call.active():
            self.abort_call.cancel()
        if self.counted:
            self.factory.open_connections -= 1

    def timeoutConnection(self) -> None:
        self._close()
        self.abort_call = self.callLater(self.factory.idle_timeout, self.transport.abortConnection)

    def _close(self) -> None:
        # A paused producer would hold the transport open once its buffer drains.
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        self._answer_buffered()

    def _answer_buffered(self) -> None:
        """Answer the whole queries read so far, as long as the client may have more answered."""
        if self.draining:
            return
        self.draining = True
        start = 0
        try:
            while self._open() and not self._full():
                packet, start = message_at(self.buffer, start, self.factory.max_query_size)
                if packet is None:
                    break
                self._answer(packet)
        except StreamError:
            self._close()
        finally:
            self.buffer = self.buffer[start:]
            self.draining = False
        self._pause_reading_while_full()

    def _answer(self, packet: bytes) -> None:
        self.resetTimeout()
        peer = self.transport.getPeer()
        reply = answer_packet(self.table, packet, client_address(peer.host, peer.port), "tcp", self.factory.local)
        if isinstance(reply, defer.Deferred):
            self.answering += 1
            reply.addCallback(self._answered)
        else:
            self._send(reply)

    def _answered(self, reply: bytes | list[bytes] | None) -> None:
        self.answering -= 1
        self._send(reply)
        self._answer_buffered()

    def _open(self) -> bool:
        return self.transport.connected and not self.transport.disconnecting

    def _full(self) -> bool:
        return self.write_blocked or self.answering >= self.factory.max_pipelined

    def _pause_reading_while_full(self) -> None:
        full = self._full()
        if full != self.reading_paused and self.transport.connected:
            self.reading_paused = full
            if full:
                self.transport.pauseProducing()
            else:
                self.transport.resumeProducing()

    def _send(self, reply: bytes | list[bytes] | None) -> None:
        if reply is not None and self._open():
            messages = [reply] if isinstance(reply, bytes) else reply
            self.transport.writeSequence([frame(message) for message in messages])
            self.resetTimeout()

    def pauseProducing(self) -> None:
        """The client does not read its replies as fast as they come: stop reading its queries."""
        self.write_blocked = True
        self._pause_reading_while_full()

    def resumeProducing(self) -> None:
        self.write_blocked = False
        self._answer_buffered()

    def stopProducing(self) -> None:
        """The connection is gone; L{connectionLost} tidies up."""


class DNSStreamFactory(protocol.ServerFactory):
    """
    Builds a L{DNSStreamProtocol} per TCP connection, up to C{max_connections}
    open at once; the limits are attributes, for tests to set small.
    """

    noisy = False
    idle_timeout = TCP_IDLE_TIMEOUT
    max_connections = MAX_TCP_CONNECTIONS
    max_pipelined = MAX_PIPELINED_QUERIES
    max_query_size = MAX_TCP_QUERY_SIZE

    def __init__(self, table: ZoneTable) -> None:
        self.table = table
        self.local: tuple[str, int] | None = None
        self.open_connections = 0

    def buildProtocol(self, addr):
        stream = DNSStreamProtocol(self.table)
        stream.factory = self
        return stream


def listener_tables(configs: list[ServerConfig]) -> dict[tuple[str, int], ZoneTable]:
    """One zone table per (host, port) that some server block listens on; blocks sharing a zone there must
    all have a view but for at most one."""
    tables: dict[tuple[str, int], ZoneTable] = {}
    for config in configs:
        for address in config.zones:
            for host in config.bind_hosts or [""]:
                table = tables.setdefault((host, address.port), ZoneTable())
                if config.admits is None and any(other.admits is None for other in table.configs.get(address.zone, ())):
                    block = config.block
                    raise CorefileError(
                        block.file,
                        block.line,
                        f"zone {address.zone} on port {address.port} is served by two server blocks",
                    )
                table.add(address.zone, config)
    return tables


def bound_socket(host: str, port: int, kind: int, reuse_port: bool) -> socket.socket:
    """A non-blocking socket of C{kind} bound to (C{host}, C{port}) (and listening, for TCP), with
    C{SO_REUSEPORT} if C{reuse_port}; a UDP one asks for a receive queue of L{UDP_RECEIVE_BUFFER}.

    Raises CannotListenError, as the reactor's C{listenTCP} and C{listenUDP} do.
    """
    try:
        sock = socket.socket(socket.AF_INET6 if isIPv6Address(host) else socket.AF_INET, kind)
    except OSError as err:
        raise CannotListenError(host, port, err) from None
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        else:
            # Queries that arrive while the reactor is held up (a collection, a busy moment of the
            # host) wait here instead of being dropped; the kernel caps it at net.core.rmem_max.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(TCP_BACKLOG)
        sock.setblocking(False)
    except OSError as err:
        sock.close()
        raise CannotListenError(host, port, err) from None
    return sock


class DNSService(service.Service):
    """
    Binds a UDP and a TCP listener per zone table once every start-up wait
    has fired (stanzas synced or timed out); C{listening} fires then, and
    C{ports} holds what was bound.  With C{reuse_port} (a worker of
    L{kubernetai.supervisor}) every socket is bound with C{SO_REUSEPORT}, so
    that the workers share each port and the kernel spreads queries over them.
    """

    def __init__(self, tables: dict[tuple[str, int], ZoneTable], reactor=None, startup_waits=(),
                 reuse_port: bool = False) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.tables = tables
        self.reuse_port = reuse_port
        self.startup_waits = list(startup_waits)
        self.ports: list = []
        self.listening: defer.Deferred = defer.Deferred()

    def startService(self) -> None:
        super().startService()
        waits = defer.gatherResults([wait() for wait in self.startup_waits])
        waits.addCallback(lambda _: self._listen_all())
        waits.addErrback(self._failed_to_listen)

    def _listen_all(self) -> None:
        if not self.running:
            return
        for (host, port), table in self.tables.items():
            self.ports += self._listen(host, port, table)
        for transport, host, port in self.addresses():
            log.info("listening on {transport} {host} port {port}", transport=transport.lower(), host=host, port=port)
        self.listening.callback(self.ports)

    def _failed_to_listen(self, failure) -> None:
        log.failure("cannot listen", failure)
        self.listening.errback(failure)
        if self.reactor.running:
            self.reactor.stop()

    def _listen(self, host: str, port: int, table: ZoneTable) -> list:
        """A TCP and a UDP port on C{host} (all addresses, both families, when empty)."""
        if not host:
            try:
                return self._listen("::", port, table)
            except CannotListenError:
                host = "0.0.0.0"
        factory = DNSStreamFactory(table)
        tcp = self._listen_tcp(host, port, factory)
        factory.local = (tcp.getHost().host, tcp.getHost().port)
        try:
            udp = self._listen_udp(host, tcp.getHost().port, DNSDatagramProtocol(table))
        except CannotListenError:
            tcp.stopListening()
            raise
        return [udp, tcp]

    def _listen_tcp(self, host: str, port: int, factory: DNSStreamFactory):
        if not self.reuse_port:
            return IReactorTCP(self.reactor).listenTCP(port, factory, interface=host)
        with bound_socket(host, port, socket.SOCK_STREAM, reuse_port=True) as sock:
            return IReactorSocket(self.reactor).adoptStreamPort(sock.fileno(), sock.family, factory)

    def _listen_udp(self, host: str, port: int, datagrams: DNSDatagramProtocol):
        """Bound here, not by the reactor's listenUDP: Twisted has no public way to set a socket option on
        the socket it binds (the receive queue)."""
        with bound_socket(host, port, socket.SOCK_DGRAM, self.reuse_port) as sock:
            return IReactorSocket(self.reactor).adoptDatagramPort(sock.fileno(), sock.family, datagrams)

    def stopService(self):
        super().stopService()
        ports, self.ports = self.ports, []
        return defer.gatherResults([defer.maybeDeferred(port.stopListening) for port in ports])

    def retable(self, tables: dict[tuple[str, int], ZoneTable]) -> None:
        """Serve C{tables} from now on: kept addresses switch in place, new ones listen, gone ones close."""
        for key, table in tables.items():
            current = self.tables.get(key)
            if current is not None:
                current.configs, current.has_views = table.configs, table.has_views
                current.forget_replies()
            elif self.running:
                self.ports += self._listen(key[0], key[1], table)
        for key in set(self.tables) - set(tables):
            table = self.tables.pop(key)
            for port in [p for p in self.ports if _serves(p, table)]:
                self.ports.remove(port)
                port.stopListening()
        self.tables.update({key: table for key, table in tables.items() if key not in self.tables})

    def addresses(self) -> list[tuple[str, str, int]]:
        """(transport, host, port) of every bound listener."""
        return [(address.type, address.host, address.port) for address in (p.getHost() for p in self.ports)]
