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

from dataclasses import dataclass, field

from twisted.internet import defer
from twisted.logger import Logger
from twisted.names import dns
from twisted.python.failure import Failure

from kubernetai.alike import AlikeReplies
from kubernetai.chain import PluginError, Request, Response, ServerConfig, then
from kubernetai.message import Rejected, decode_query, encode_reply, encode_transfer
from kubernetai.reuse import KeptReplies, not_reusable

log = Logger(namespace="kubernetai.answer")

DS = 43
MAX_LOOKUP_DEPTH = 8


@dataclass
class ZoneTable(KeptReplies, AlikeReplies):
    """The server blocks listening on one address, by zone, the replies kept to send again
    (L{KeptReplies}, with the rules of L{kubernetai.reuse}) and the denials given alike to other
    names (L{AlikeReplies})."""

    configs: dict[str, list[ServerConfig]] = field(default_factory=dict)
    # Some block has a view: which block answers depends on more than the query's bytes.
    has_views: bool = False

    def add(self, zone: str, config: ServerConfig) -> None:
        self.configs.setdefault(zone, []).append(config)
        if config.admits is not None:
            self.has_views = True

    def route(self, request: Request) -> tuple[str, ServerConfig] | None:
        """The (zone, config) serving C{request}: of the blocks of the longest zone that is a suffix
        of its name, the first (in Corefile order) whose view admits it; with none, a shorter zone's.

        DS records live in the parent zone, so for DS the least specific match wins (of its blocks, the
        last that admits the query, as CoreDNS's server keeps looking).
        """
        match = None
        name = request.name
        labels = name.rstrip(".").split(".") if name != "." else []
        for start in range(len(labels) + 1):
            zone = ".".join(labels[start:]) + "." if start < len(labels) else "."
            for config in self.configs.get(zone, ()):
                if config.admits is None or config.admits(request):
                    match = (zone, config)
                    if request.qtype != DS:
                        return match
        return match

    def forget_replies(self) -> None:
        KeptReplies.forget_replies(self)
        self.forget_alike()


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
    return then(_serve(table, request), lambda response: _write(request, response, table))


def _serve(table: ZoneTable, request: Request):
    """The Response of the chain of the block serving C{request}'s zone, or a Deferred firing with it."""
    routed = table.route(request)
    if routed is None or request.qclass not in routed[1].classes:
        return Response(rcode=dns.EREFUSED)
    request.zone, config = routed
    request.resolver = lambda origin, name, qtype: _lookup(table, origin, name, qtype)
    try:
        result = config.chain.serve(request)
    except Exception:
        return _failure_response(Failure())
    if isinstance(result, defer.Deferred):
        result.addErrback(_failure_response)
    if table.has_views:
        return not_reusable(result)
    return result


def lookup_through(table: ZoneTable):
    """The C{resolver} of a request that C{table} routed (as L{_serve} sets it inline, on the query path):
    other names resolved through its chains."""
    return lambda origin, name, qtype: _lookup(table, origin, name, qtype)


def _lookup(table: ZoneTable, origin: Request, name: str, qtype: int) -> defer.Deferred:
    """Resolve C{name} through C{table}'s chains on behalf of C{origin}, at most MAX_LOOKUP_DEPTH deep;
    with its EDNS buffer size and DO bit, as CoreDNS's upstream copies the query."""
    if origin.depth >= MAX_LOOKUP_DEPTH:
        return defer.fail(PluginError("upstream", f"lookup of {name} nested too deep"))
    message = dns.Message(recDes=1)
    message.addQuery(name.rstrip(".").encode("ascii", "replace"), qtype, dns.IN)
    request = Request(message.toStr(), message, origin.client, origin.protocol, origin.edns, origin.dnssec_ok,
                      origin.payload_size)
    request.depth = origin.depth + 1
    request.local = origin.local
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
    if table is not None and request.protocol == "udp" and None not in replays:
        if response.valid_while is not None:
            table.keep_reply(request.packet, written, response, tuple(replays))
        if response.alike is not None:
            _keep_alike(table, request, written, response, tuple(replays))
    return reply


def _keep_alike(table: ZoneTable, request: Request, written: bytes, response: Response, replays: tuple) -> None:
    """Keep a denial its handler gives other names alike, when every plugin before that handler treats
    them alike, and the reply is whole and routed as any name of the zone would be."""
    alike = response.alike
    if table.has_views or request.qtype == DS or written[2] & 0x02:
        return

    def admitted_route() -> str | None:
        routed = table.route(request)
        return routed[0] if routed is not None and routed[1].alike_up_to(alike.source, alike.zone) else None

    table.keep_alike(request.packet, written, alike, replays, request.max_size, admitted_route, table.configs)
