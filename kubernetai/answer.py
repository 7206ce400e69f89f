# -*- test-case-name: tests.test_answer,tests.test_server,tests.test_cache_daemon -*-
"""
The answer to one packet, whatever carried it: decode it, route it to the
server block with the most specific zone, run that block's chain, and write
the reply within the client's limits.  A L{ZoneTable} holds the blocks of
one listening address and the UDP replies ready to send again, which the
server's datagram protocol answers repeated queries from without running
any of this.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.names import dns
from twisted.python.failure import Failure

from kubernetai.chain import Countdown, PluginError, Request, Response, ServerConfig
from kubernetai.message import Rejected, decode_query, encode_reply, encode_transfer, record_ttl_offsets, with_ttl

log = Logger(namespace="kubernetai.answer")

DS = 43
MAX_LOOKUP_DEPTH = 8
# What the replies kept to send again may hold, both generations together (see L{ZoneTable}): a
# reply is counted as its bytes, its query's, and READY_REPLY_OVERHEAD for the objects around them
# (the entry, its checks and observers' replays: about 1.5 KB with prometheus and cache, as
# tracemalloc counts them in a running daemon).  Hot replies stay however many others come and
# go; one not asked again within one to two READY_REPLIES_SECONDS is dropped at the next reply
# kept after that.
READY_REPLIES_LIMIT = 50000
READY_REPLIES_BYTES = 32 * 2**20
READY_REPLIES_SECONDS = 30.0
READY_REPLY_OVERHEAD = 2048


class ReadyReply:
    """A reply kept to send again: its bytes less the ID, the check that says they still hold, the
    observers' replays, where its TTLs are rewritten as they tick (None if they do not), and the
    bytes it is counted as."""

    __slots__ = ("reply", "valid_while", "replays", "ticking", "size")

    def __init__(self, reply: bytes, valid_while, replays: tuple, ticking: TickingTTLs | None, size: int) -> None:
        self.reply = reply
        self.valid_while = valid_while
        self.replays = replays
        self.ticking = ticking
        self.size = size


@dataclass
class ZoneTable:
    """
    The server blocks listening on one address, by zone, and the UDP replies
    ready to send again: by query bytes less the ID, with the check that
    says they still hold (see L{Response.valid_while}).

    Kept replies live in two generations: new ones go into C{ready_replies};
    once it holds half of C{ready_limit} replies or of C{ready_bytes_limit}
    bytes, or is C{ready_seconds} old, it becomes C{older_replies} and the
    generation before is dropped.  A reply asked for from the older
    generation moves back into the current one, so the replies still asked
    for stay and the others go, within both bounds.
    """

    configs: dict[str, ServerConfig] = field(default_factory=dict)
    ready_replies: dict[bytes, ReadyReply] = field(default_factory=dict)
    older_replies: dict[bytes, ReadyReply] = field(default_factory=dict)
    ready_limit: int = READY_REPLIES_LIMIT
    ready_bytes_limit: int = READY_REPLIES_BYTES
    ready_seconds: float = READY_REPLIES_SECONDS
    clock: Callable[[], float] = time.monotonic
    ready_bytes: int = 0
    generation_ends: float = -math.inf

    def ready_reply(self, packet: bytes) -> tuple[bytes, tuple] | None:
        """The reply to C{packet} and its observers' replays, if the same query was answered before
        and that reply still holds."""
        ready = self.ready_replies.get(packet[2:])
        if ready is None:
            ready = self.older_replies.pop(packet[2:], None)
            if ready is None:
                return None
            self._admit(packet[2:], ready)
        ticking = ready.ticking
        if not ready.valid_while():
            if ticking is None or not ticking.countdown.try_renew() or not ready.valid_while():
                return None
        if ticking is not None:
            ready.reply = ticking.current(ready.reply)
        return packet[:2] + ready.reply, ready.replays

    def keep_reply(self, packet: bytes, reply: bytes, response: Response, replays: tuple) -> None:
        """Keep C{reply} to send again while C{response} holds; one whose TTLs count down is kept
        until they reach zero, its TTLs rewritten as they tick."""
        ticking = None
        if response.countdown is not None:
            ticking = TickingTTLs(response.countdown, [offset - 2 for offset in record_ttl_offsets(reply)])
            response.countdown.follow()
        key = packet[2:]
        self.older_replies.pop(key, None)
        self._admit(key, ReadyReply(reply[2:], response.valid_while, replays, ticking,
                                    len(key) + len(reply) + READY_REPLY_OVERHEAD))

    def _admit(self, key: bytes, ready: ReadyReply) -> None:
        """Put C{ready} in the current generation, starting a new one first if this one is full or old."""
        previous = self.ready_replies.pop(key, None)
        if previous is not None:
            self.ready_bytes -= previous.size
        now = self.clock()
        if (2 * (len(self.ready_replies) + 1) > self.ready_limit
                or 2 * (self.ready_bytes + ready.size) > self.ready_bytes_limit or now >= self.generation_ends):
            self.older_replies, self.ready_replies, self.ready_bytes = self.ready_replies, {}, 0
            self.generation_ends = now + self.ready_seconds
        self.ready_replies[key] = ready
        self.ready_bytes += ready.size

    def kept_replies(self) -> int:
        """How many replies are kept, in both generations."""
        return len(self.ready_replies) + len(self.older_replies)

    def forget_replies(self) -> None:
        """Drop every kept reply (the chains that made them are gone)."""
        self.ready_replies, self.older_replies, self.ready_bytes = {}, {}, 0

    def add(self, zone: str, config: ServerConfig) -> None:
        self.configs[zone] = config

    def route(self, name: str, qtype: int) -> tuple[str, ServerConfig] | None:
        """The (zone, config) serving C{name}: the longest zone that is a suffix of it.

        DS records live in the parent zone, so for DS the least specific match wins.
        """
        match = None
        labels = name.rstrip(".").split(".") if name != "." else []
        for start in range(len(labels) + 1):
            zone = ".".join(labels[start:]) + "." if start < len(labels) else "."
            config = self.configs.get(zone)
            if config is not None:
                match = (zone, config)
                if qtype != DS:
                    return match
        return match


class TickingTTLs:
    """Where the TTLs of a kept reply (less its ID) sit, and when they must next be rewritten."""

    __slots__ = ("countdown", "offsets", "next_tick")

    def __init__(self, countdown: Countdown, offsets: list[int]) -> None:
        self.countdown = countdown
        self.offsets = offsets
        self.next_tick = countdown.until

    def current(self, reply: bytes) -> bytes:
        """C{reply} with the TTLs the countdown reads now."""
        now = self.countdown.clock.seconds()
        if now < self.next_tick:
            return reply
        self.next_tick = self.countdown.next_tick(now)
        return with_ttl(reply, self.offsets, self.countdown.ttl_at(now))


def answer_packet(table: ZoneTable, packet: bytes, client: tuple[str, int], transport: str, local=None):
    """The reply to C{packet}: bytes (a list of them: a zone transfer's messages, over TCP only), None
    to drop it, or a Deferred firing with either.

    It never raises: a packet that trips a bug is logged and dropped.
    """
    try:
        return _answer(table, packet, client, transport, local)
    except Exception:
        log.failure("dropped a packet that could not be answered")
        return None


def _answer(table: ZoneTable, packet: bytes, client: tuple[str, int], transport: str, local):
    try:
        request = decode_query(packet, client, transport)
    except Rejected as rejected:
        return rejected.reply
    if request is None:
        return None
    request.local = local
    result = _serve(table, request)
    if isinstance(result, defer.Deferred):
        return result.addCallback(lambda response: _write(request, response, table))
    return _write(request, result, table)


def _serve(table: ZoneTable, request: Request):
    """The Response of the chain of the block serving C{request}'s zone, or a Deferred firing with it."""
    routed = table.route(request.name, request.qtype)
    if routed is None or request.qclass not in routed[1].classes:
        return Response(rcode=dns.EREFUSED)
    request.zone, config = routed
    request.resolver = lambda origin, name, qtype: _lookup(table, origin, name, qtype)
    try:
        result = config.chain.serve(request)
    except Exception:
        return _failure_response(Failure())
    if isinstance(result, defer.Deferred):
        return result.addErrback(_failure_response)
    return result


def lookup_through(table: ZoneTable):
    """The C{resolver} of a request that C{table} routed (as L{_serve} sets it inline, on the query path):
    other names resolved through its chains."""
    return lambda origin, name, qtype: _lookup(table, origin, name, qtype)


def _lookup(table: ZoneTable, origin: Request, name: str, qtype: int) -> defer.Deferred:
    """Resolve C{name} through C{table}'s chains on behalf of C{origin}, at most MAX_LOOKUP_DEPTH deep."""
    if origin.depth >= MAX_LOOKUP_DEPTH:
        return defer.fail(PluginError("upstream", f"lookup of {name} nested too deep"))
    message = dns.Message(recDes=1)
    message.addQuery(name.rstrip(".").encode("ascii", "replace"), qtype, dns.IN)
    request = Request(message.toStr(), message, origin.client, origin.protocol)
    request.depth = origin.depth + 1
    return defer.maybeDeferred(_serve, table, request)


def client_address(host: str, port: int) -> tuple[str, int]:
    """The client's address, an IPv4 client on a dual-stack socket shown as IPv4."""
    if host.startswith("::ffff:") and "." in host:
        host = host[len("::ffff:") :]
    return host, port


def _failure_response(failure: Failure) -> Response:
    """SERVFAIL (or the plugin's rcode) for a query no plugin could answer."""
    if failure.check(PluginError):
        return Response(rcode=failure.value.rcode)
    log.failure("unexpected error while answering a query", failure)
    return Response(rcode=dns.ESERVER)


def _write(request: Request, response: Response, table: ZoneTable | None = None) -> bytes | list[bytes]:
    """Encode the reply (a zone transfer's messages over TCP, REFUSED over UDP; None for a dropped query) and
    tell the plugins that wanted to see it (a transfer's messages one after another, as CoreDNS counts their size)."""
    if response.dropped:
        return None
    if response.messages is not None and request.protocol != "tcp":
        response = Response(rcode=dns.EREFUSED)
    reply = encode_reply(request, response) if response.messages is None else encode_transfer(request, response)
    written = reply if isinstance(reply, bytes) else b"".join(reply)
    replays = []
    for observer in request.reply_observers:
        try:
            replays.append(observer(request, response, written))
        except Exception:
            replays.append(None)
            log.failure("reply observer failed")
    if response.valid_while is not None and table is not None and request.protocol == "udp" \
            and None not in replays:
        table.keep_reply(request.packet, written, response, tuple(replays))
    return reply
