# -*- test-case-name: tests.test_chain -*-
"""
The plugin chain: what a plugin sees of a query, what it answers, and the
fixed order in which the plugins of a server block run.

A plugin's handler has one method, C{serve(request)}, returning a L{Response}
or a Deferred firing with one; it hands a query on with
C{self.next.serve(request)}.  The order comes from L{PLUGIN_ORDER}, as
CoreDNS's plugin.cfg fixes it, never from the Corefile.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet.defer import Deferred, fail
from twisted.names import dns
from zope.interface import Attribute, Interface, implementer

from kubernetai import options
from kubernetai.corefile import CorefileError, Directive, ServerBlock
from kubernetai.zones import ZoneAddress

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from kubernetai.alike import Alike
    from kubernetai.answer import ZoneTable
    from kubernetai.httpservice import HTTPService
    from kubernetai.kubernetes.cluster import Cluster
    from kubernetai.kubernetes.config import StanzaConfig
    from kubernetai.kubernetes.stanza import Stanza
    from kubernetai.plugins.prometheus import DNSMetrics
    from kubernetai.reuse import Countdown

# CoreDNS's plugin.cfg order for the plugins we know of.  A name mapped to a
# module runs here; a name mapped to None is a CoreDNS plugin we refuse by
# name.  kubernetes and kubernetai share one module: each directive is a
# stanza, and the stanzas keep their Corefile order.
PLUGIN_ORDER: tuple[tuple[str, str | None], ...] = (
    ("root", None),
    ("metadata", None),
    ("geoip", None),
    ("cancel", None),
    ("proxyproto", None),
    ("quic", None),
    ("grpc_server", None),
    ("https", None),
    ("https3", None),
    ("timeouts", None),
    ("multisocket", None),
    ("reload", "kubernetai.plugins.reload"),
    ("nsid", "kubernetai.plugins.nsid"),
    ("bufsize", None),
    ("bind", "kubernetai.plugins.bind"),
    ("debug", "kubernetai.plugins.debug"),
    ("trace", None),
    ("ready", "kubernetai.plugins.ready"),
    ("explain", "kubernetai.plugins.explain"),
    ("health", "kubernetai.plugins.health"),
    ("pprof", None),
    ("shed", None),
    ("prometheus", "kubernetai.plugins.prometheus"),
    ("errors", "kubernetai.plugins.errors"),
    ("log", "kubernetai.plugins.log"),
    ("dnstap", None),
    ("local", "kubernetai.plugins.local"),
    ("dns64", None),
    ("any", "kubernetai.plugins.any"),
    ("chaos", "kubernetai.plugins.chaos"),
    ("loadbalance", "kubernetai.plugins.loadbalance"),
    ("tsig", None),
    ("rewrite", "kubernetai.plugins.rewrite"),
    ("autopath", "kubernetai.plugins.autopath"),
    ("acl", "kubernetai.plugins.acl"),
    ("cache", "kubernetai.plugins.cache"),
    ("header", "kubernetai.plugins.header"),
    ("dnssec", None),
    ("tls", None),
    ("minimal", "kubernetai.plugins.minimal"),
    ("template", "kubernetai.plugins.template"),
    ("transfer", "kubernetai.plugins.transfer"),
    ("hosts", "kubernetai.plugins.hosts"),
    ("route53", None),
    ("azure", None),
    ("clouddns", None),
    ("k8s_external", "kubernetai.plugins.k8s_external"),
    ("kubernetes", "kubernetai.plugins.kubernetai"),
    ("kubernetai", "kubernetai.plugins.kubernetai"),
    ("file", "kubernetai.plugins.file"),
    ("auto", None),
    ("secondary", None),
    ("etcd", None),
    ("loop", "kubernetai.plugins.loop"),
    ("forward", "kubernetai.plugins.forward"),
    ("grpc", None),
    ("erratic", None),
    ("whoami", "kubernetai.plugins.whoami"),
    ("on", None),
    ("sign", None),
    ("view", "kubernetai.plugins.view"),
    ("nomad", None),
)


class Request:
    """
    One query on its way down the chain: the parsed message, who asked and
    how, and the callbacks that want to see the reply once it is written.
    """

    __slots__ = (
        "packet",
        "message",
        "query",
        "name",
        "client",
        "protocol",
        "edns",
        "dnssec_ok",
        "payload_size",
        "zone",
        "local",
        "received",
        "reply_observers",
        "resolver",
        "depth",
    )

    def __init__(
        self,
        packet: bytes,
        message: dns.Message,
        client: tuple[str, int],
        protocol: str,
        edns: bool = False,
        dnssec_ok: bool = False,
        payload_size: int = 512,
    ) -> None:
        self.packet = packet
        self.message = message
        self.query: dns.Query = message.queries[0]
        self.name = _fqdn(self.query.name.name.decode("ascii", "replace").lower())
        self.client = client
        self.protocol = protocol
        self.edns = edns
        self.dnssec_ok = dnssec_ok
        self.payload_size = payload_size
        self.zone = "."
        self.local: tuple[str, int] | None = None
        self.received = time.monotonic()
        self.reply_observers: list[Callable[[Request, Response, bytes], Callable | None]] = []
        self.resolver: Callable[[Request, str, int], Deferred] | None = None
        self.depth = 0

    @property
    def size(self) -> int:
        """The query's size on the wire."""
        return len(self.packet)

    @property
    def qname(self) -> bytes:
        """The name as the client wrote it, case kept, without the final dot."""
        return self.query.name.name

    @property
    def qtype(self) -> int:
        return self.query.type

    @property
    def qclass(self) -> int:
        return self.query.cls

    @property
    def max_size(self) -> int:
        """The largest reply this client takes over its transport."""
        if self.protocol == "tcp":
            return 65535
        return max(512, self.payload_size) if self.edns else 512

    def lookup(self, name: str, qtype: int) -> Deferred:
        """Resolve C{name} through the server that received this query, as CoreDNS's upstream does.

        A Deferred firing with the Response; failing with PluginError when no server is there.
        """
        if self.resolver is None:
            return fail(PluginError("upstream", f"no server to resolve {name} through"))
        return self.resolver(self, name, qtype)

    def observe_reply(self, observer: Callable[[Request, Response, bytes], Callable | None]) -> None:
        """Have C{observer(request, response, reply)} called with the wire reply once it is written.

        An observer may return C{replay(client_host, seconds)}: what it does when the server sends
        the same reply again, from its ready replies, to a client; without one, the server runs the
        chain for every query so that the observer sees each.
        """
        self.reply_observers.append(observer)

    def asking(self, qname: bytes) -> Request:
        """This query with C{qname} as its question, for a plugin to send down the rest of the chain itself.

        Flags, EDNS and client stay; reply observers do not (the reply to this query is what they see).
        """
        message = dns.Message()
        message.fromStr(self.packet)
        message.queries[0].name = dns.Name(qname)
        copy = Request(message.toStr(), message, self.client, self.protocol, self.edns, self.dnssec_ok,
                       self.payload_size)
        copy.zone, copy.local, copy.resolver, copy.depth = self.zone, self.local, self.resolver, self.depth
        return copy


def then(result, callback: Callable, *args):
    """C{callback(response, *args)} for C{result}, a Response or a Deferred firing with one: its
    value at once, or a Deferred firing with it."""
    if isinstance(result, Deferred):
        return result.addCallback(callback, *args)
    return callback(result, *args)


@dataclass
class Response:
    """A plugin's answer: rcode, flags and the three record sections."""

    rcode: int = dns.OK
    answers: list[dns.RRHeader] = field(default_factory=list)
    authority: list[dns.RRHeader] = field(default_factory=list)
    additional: list[dns.RRHeader] = field(default_factory=list)
    authoritative: bool = False
    recursion_available: bool = False
    truncated: bool = False
    # The reply's RD bit; None: the query's.
    recursion_desired: bool | None = None
    # (name, qtype) whose records, resolved through the server, complete the answer (CoreDNS's upstream).
    follow: tuple[str, int] | None = None
    # While this returns True, the same query gets the very same reply bytes, which the server may
    # then send again without running the chain; None: every reply is built anew (L{kubernetai.reuse}).
    valid_while: Callable[[], bool] | None = None
    # Every TTL in this reply counts down with the clock (a cache hit): see L{kubernetai.reuse}.
    countdown: Countdown | None = None
    # A zone transfer: the answer records of each of several messages, sent in turn (over TCP only).
    messages: list[list[dns.RRHeader]] | None = None
    # No reply at all: the query is dropped (acl's drop).
    dropped: bool = False
    # EDNS options (code, data) for the reply's OPT record, written when the query has one.
    edns_options: tuple[tuple[int, bytes], ...] = ()
    # A denial its handler gives other names of a zone too (L{kubernetai.alike}).
    alike: Alike | None = None

    def but(self, **changes) -> Response:
        """A copy with C{changes}, as C{dataclasses.replace} makes it at a quarter of its cost (the cache
        copies every reply it keeps)."""
        copy = object.__new__(Response)
        copy.__dict__.update(self.__dict__, **changes)
        return copy


class IHandler(Interface):
    """A plugin in the chain."""

    name = Attribute("The plugin's directive name, for logs and errors.")
    next = Attribute("The handler that runs after this one.")

    def serve(request):
        """Answer C{request}: a L{Response} or a Deferred firing with one."""

    # Optional: C{passes_alike(zone)}, see L{passes_alike}.


def passes_alike(handler: IHandler, zone: str) -> bool:
    """Whether C{handler} treats every name of C{zone} alike: hands each query on as it is (or answers
    it) the same way whatever the name, and changes a denial coming back the same way; said by its
    C{passes_alike(zone)}, False for a handler without one (L{kubernetai.alike})."""
    says = getattr(handler, "passes_alike", None)
    return says is not None and says(zone)


class PluginError(Exception):
    """A plugin could not answer: logged by errors, answered with C{rcode}."""

    def __init__(self, plugin: str, message: str, rcode: int = dns.ESERVER) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.rcode = rcode


@implementer(IHandler)
class EndOfChain:
    """What a plugin reaches when it hands a query on and nothing follows."""

    name = "end"
    next = None

    def serve(self, request: Request) -> Response:
        raise PluginError("end", "no next plugin found")


def _global_reactor():
    from twisted.internet import reactor

    return reactor


@dataclass
class Shared:
    """What the plugins of every server block share, made by the first block that needs it."""

    # The plugins that report readiness: (name, ready()).
    readiness: list[tuple[str, Callable[[], bool]]] = field(default_factory=list)
    # The kubernetai stanzas of every block, in Corefile order.
    stanzas: list[Stanza] = field(default_factory=list)
    # One HTTP listener per (host, port) the Corefile names, however many blocks ask.
    http_listeners: dict[tuple[str, int], HTTPService] = field(default_factory=dict)
    # During a reload: the running clusters a stanza with the same options may keep.
    reusable: dict[StanzaConfig, list[Cluster]] = field(default_factory=dict)
    # In a worker: every stanza takes one of C{reusable}, its supervisor's feeds (L{kubernetai.kubernetes.feed}).
    fed: bool = False
    # reload's (interval, jitter).
    reload: tuple[float, float] | None = None
    # What /metrics reads at scrape time: each returns metric families.
    metric_sources: list[Callable[[], Any]] = field(default_factory=list)
    # Each plugin's instances across blocks, for its metrics (L{kubernetai.metrics.instances}).
    plugin_instances: dict[str, list] = field(default_factory=dict)
    # prometheus's counts and registry.
    dns_metrics: tuple[DNSMetrics, CollectorRegistry] | None = None
    # The zone tables by listening (host, port), once every block is built (explain routes through them).
    tables: dict[tuple[str, int], ZoneTable] = field(default_factory=dict)


@dataclass
class ServerConfig:
    """What the plugins of one server block made of it: listeners, chain, services."""

    block: ServerBlock
    zones: tuple[ZoneAddress, ...]
    bind_hosts: list[str] = field(default_factory=list)
    handlers: list[IHandler] = field(default_factory=list)
    services: list = field(default_factory=list)
    startup_waits: list[Callable[[], Deferred]] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)
    # The query classes the chain answers; any other class is REFUSED before it (chaos adds CH).
    classes: set[int] = field(default_factory=lambda: {dns.IN})
    # The view plugin's test: the block serves only the queries it admits (None: every query).
    admits: Callable[[Request], bool] | None = None
    reactor: Any = field(default_factory=_global_reactor)
    shared: Shared = field(default_factory=Shared)

    @property
    def chain(self) -> IHandler:
        """The first handler of the chain."""
        return self.handlers[0] if self.handlers else EndOfChain()

    def alike_up_to(self, source: IHandler, zone: str) -> bool:
        """Whether every handler before C{source} treats the names of C{zone} alike (L{passes_alike})."""
        for handler in self.handlers:
            if handler is source:
                return True
            if not passes_alike(handler, zone):
                return False
        return False


def _plugin_module(directive: Directive):
    """The module implementing C{directive}, or a CorefileError naming it."""
    for name, module in PLUGIN_ORDER:
        if name == directive.name:
            if module is None:
                raise CorefileError(
                    directive.file,
                    directive.line,
                    f"plugin {name!r} is not supported by kubernetai; remove it or see README "
                    "'Coming from CoreDNS'",
                )
            return importlib.import_module(module)
    raise options.unknown(directive, "directive", [name for name, _ in PLUGIN_ORDER])


def build_server(block: ServerBlock, shared: Shared | None = None) -> ServerConfig:
    """Run every plugin's setup for C{block} and link the handlers in plugin.cfg order."""
    config = ServerConfig(block=block, zones=block.addresses, shared=shared or Shared())
    by_module: dict[str, list[Directive]] = {}
    for directive in block.directives:
        module = _plugin_module(directive)
        by_module.setdefault(module.__name__, []).append(directive)
    seen_modules = set()
    for _, module_name in PLUGIN_ORDER:
        if module_name is None or module_name in seen_modules or module_name not in by_module:
            continue
        seen_modules.add(module_name)
        module = importlib.import_module(module_name)
        directives = by_module[module_name]
        try:
            handler = module.setup(directives, config)
        except CorefileError as err:
            raise CorefileError(err.file, err.line, f"plugin/{directives[0].name}: {err.message}") from None
        if handler is not None:
            config.handlers.append(handler)
    link(config.handlers)
    return config


def link(handlers: list[IHandler]) -> None:
    """Point each handler's C{next} at the one after it, the last at L{EndOfChain}."""
    for handler, following in zip(handlers, handlers[1:] + [EndOfChain()]):
        handler.next = following


def _fqdn(name: str) -> str:
    return name + "." if not name.endswith(".") else name
