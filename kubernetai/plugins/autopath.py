# -*- test-case-name: tests.test_autopath -*-
"""
autopath: completes a client's DNS search path on the server, as CoreDNS's
autopath plugin does, so that a pod asking C{web.default} gets its answer
in one round trip instead of one NXDOMAIN per search element.

C{autopath [ZONE...] RESOLV-CONF} searches the C{search} list of that file.
C{autopath [ZONE...] @kubernetai} (or C{@kubernetes}) builds the client's
search path from the block's stanzas, as CoreDNS's kubernetes plugin does
for one: for each stanza, in Corefile order, that has C{pods verified},
holds the query's name in its zones and knows a pod with the client's IP,
C{NAMESPACE.svc.ZONE svc.ZONE ZONE} (ZONE its zone holding the name); then
the search list of /etc/resolv.conf as read at start-up.  One stanza knowing
the client is enough (coredns/kubernetai gives up unless all of them do);
when none does, the query goes on unchanged.  As in CoreDNS, C{@} naming
another plugin of the block is an error, and naming none of them leaves
every query unchanged.

A query in ZONEs whose name lies below the first element of the path is
taken as the client's first search expansion of a name BASE.  It goes down
the chain as asked; on NXDOMAIN BASE.ELEMENT is tried for each further
element, then BASE alone.  The first answer that is not NXDOMAIN is returned
to the question as asked, with a CNAME from the asked name to the found one
in front; when all are NXDOMAIN, or one fails, the first answer stands and
the client searches on by itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

from twisted.internet import defer
from twisted.logger import Logger
from twisted.names import dns
from zope.interface import implementer

from kubernetai import options, resolvconf
from kubernetai.chain import IHandler, PluginError, Request, Response, ServerConfig
from kubernetai.corefile import Directive, ServerBlock
from kubernetai.plugins.kubernetai import Kubernetai
from kubernetai.reuse import not_reusable
from kubernetai.zones import in_zones, normalize_zone

log = Logger(namespace="kubernetai.plugins.autopath")

# Where CoreDNS's kubernetes plugin reads, once at setup, the search list it appends to a pod's.
HOST_RESOLV_CONF = "/etc/resolv.conf"
# The plugins whose search path C{@NAME} asks for: both are our stanzas.
PATHERS = ("kubernetai", "kubernetes")


@dataclass(frozen=True)
class AutoPathConfig:
    """One autopath directive: its zones, and its RESOLV-CONF's search list or the plugin after C{@}."""

    zones: tuple[str, ...]
    search: tuple[str, ...] = ()
    plugin: str | None = None


@implementer(IHandler)
class AutoPath:
    """
    Tries a search-path query's other expansions down the chain.  C{search}
    ends every path (the bare name is added after it); with C{from_stanzas}
    the client's elements from the stanzas come first, and without any the
    query is not rewritten.
    """

    name = "autopath"
    next = None

    def __init__(self, zones: tuple[str, ...], search: tuple[str, ...], from_stanzas: bool) -> None:
        self.zones = zones
        self.search = search + ("",)
        self.from_stanzas = from_stanzas

    def serve(self, request: Request):
        if not in_zones(request.name, self.zones):
            return self.next.serve(request)
        path = self.search_path(request)
        base = searched_name(request, path[0]) if len(path) > 1 else None
        if base is None and not self.from_stanzas:
            return self.next.serve(request)
        # The answer depends on who asks, or on other names than the one asked: never replayed.
        if base is None:
            return not_reusable(self.next.serve(request))
        return not_reusable(defer.ensureDeferred(self._search(request, base, path[1:])))

    def search_path(self, request: Request) -> tuple[str, ...]:
        """The client's search path for C{request}, ending with C{""} for the bare name; empty for none."""
        if not self.from_stanzas:
            return self.search
        own = client_search(self.stanzas, request.client[0], request.name)
        # Stanzas sharing a zone give the same elements: each is tried once.
        return tuple(dict.fromkeys(own + self.search)) if own else ()

    @cached_property
    def stanzas(self) -> list:
        """The stanzas of the kubernetai handler further down this block's chain (none without one)."""
        handler = self.next
        while handler is not None and not isinstance(handler, Kubernetai):
            handler = handler.next
        return handler.stanzas if handler is not None else []

    async def _search(self, request: Request, base: bytes, rest: tuple[str, ...]) -> Response:
        first = await defer.maybeDeferred(self.next.serve, request)
        if first.rcode != dns.ENAME:
            return first
        for qname in expansions(base, rest):
            try:
                found = await defer.maybeDeferred(self.next.serve, request.asking(qname))
            except PluginError:
                return first
            if found.rcode != dns.ENAME:
                return with_cname(found, request.qname)
        return first


def client_search(stanzas: list, ip: str, name: str) -> tuple[str, ...]:
    """C{NAMESPACE.svc.ZONE svc.ZONE ZONE} of every stanza that holds C{name} and knows a pod at C{ip}."""
    found: list[str] = []
    for stanza in stanzas:
        zone = stanza.zone_of(name)
        pod = client_pod(stanza, ip)
        if zone is not None and pod is not None:
            found += kubernetes_search(pod.namespace, zone)
    return tuple(found)


def client_pod(stanza, ip: str):
    """The first pod with address C{ip} in a stanza with C{pods verified} (CoreDNS requires it), or None."""
    if stanza.config.pods != "verified":
        return None
    pods = stanza.cluster.snapshot.pods_by_ip.get(ip)
    return pods[0] if pods else None


def kubernetes_search(namespace: str, zone: str) -> list[str]:
    """The search path kubelet gives a pod of C{namespace} in a cluster whose domain is C{zone}."""
    if zone == ".":
        return [f"{namespace}.svc.", "svc.", "."]
    return [f"{namespace}.svc.{zone}", f"svc.{zone}", zone]


def searched_name(request: Request, first: str) -> bytes | None:
    """The name C{request} asks for with the search element C{first} appended, or None if it does not.

    The element itself is no expansion of anything (CoreDNS answers it SERVFAIL): None.
    """
    if first == ".":
        return request.qname or None
    if not request.name.endswith("." + first):
        return None
    return request.qname[: len(request.qname) - len(first)]


def expansions(base: bytes, path: tuple[str, ...]) -> list[bytes]:
    """C{base} with each element of C{path} appended; the element C{""} (or C{"."}) is C{base} alone."""
    return [base + b"." + domain.rstrip(".").encode("ascii", "replace") if domain.strip(".") else base
            for domain in path]


def with_cname(response: Response, qname: bytes) -> Response:
    """C{response} with a CNAME from C{qname} to its first answer's name that is not C{qname}, as CoreDNS's cnamer."""
    for record in response.answers:
        target = record.name.name
        if target.lower() != qname.lower():
            cname = dns.RRHeader(qname, dns.CNAME, dns.IN, record.ttl, dns.Record_CNAME(target, record.ttl), auth=True)
            return dataclasses.replace(response, answers=[cname, *response.answers])
    return response


def parse_autopath(directive: Directive, server_zones) -> AutoPathConfig:
    """C{autopath [ZONE...] RESOLV-CONF|@PLUGIN}, with CoreDNS's errors."""
    options.no_block(directive)
    if not directive.args:
        raise options.error(directive, "no resolv-conf specified")
    *zone_args, source = directive.args
    if source.startswith("@"):
        return AutoPathConfig(options.zones(directive, zone_args, server_zones), plugin=source[1:])
    try:
        search = resolvconf.read(source).search
    except OSError as err:
        raise options.error(directive, f'failed to parse "{source}": {_as_go_error(source, err)}') from None
    return AutoPathConfig(options.zones(directive, zone_args, server_zones), search=_normalized(search))


def host_search() -> tuple[str, ...]:
    """The search list of HOST_RESOLV_CONF, as CoreDNS's kubernetes plugin reads it: none if unreadable."""
    try:
        return _normalized(resolvconf.read(HOST_RESOLV_CONF).search)
    except OSError:
        return ()


def _normalized(search: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(normalize_zone(domain) for domain in search)


def _as_go_error(path: str, err: OSError) -> str:
    """C{err} worded as Go's os.Open words it, which CoreDNS shows: C{open PATH: no such file or directory}."""
    reason = err.strerror or str(err)
    return f"open {path}: {reason[:1].lower()}{reason[1:]}"


def _stanzas_named(directive: Directive, plugin: str, block: ServerBlock) -> bool:
    """Whether C{@plugin} gives this block's stanzas; naming one of its other plugins is CoreDNS's error."""
    names = {line.name for line in block.directives}
    if plugin in names and plugin not in PATHERS:
        raise options.error(directive, f"{plugin} does not implement the AutoPather interface")
    return plugin in PATHERS and any(name in PATHERS for name in names)


def setup(directives: list[Directive], config: ServerConfig) -> AutoPath:
    """One C{autopath} per server block."""
    directive = options.only_once(directives)
    parsed = parse_autopath(directive, [address.zone for address in config.zones])
    zones = " ".join(parsed.zones)
    if parsed.plugin is None:
        config.plan.append(f"autopath {zones} {directive.args[-1]} search {' '.join(parsed.search) or '(none)'}")
        return AutoPath(parsed.zones, parsed.search, from_stanzas=False)
    if not _stanzas_named(directive, parsed.plugin, config.block):
        log.warn("{file}:{line}: autopath @{plugin}: no such plugin in this server block, queries are not rewritten",
                 file=directive.file, line=directive.line, plugin=parsed.plugin)
        config.plan.append(f"autopath {zones} @{parsed.plugin} (not in this block: never rewrites)")
        return AutoPath(parsed.zones, (), from_stanzas=False)
    search = host_search()
    config.plan.append(f"autopath {zones} @{parsed.plugin}: NAMESPACE.svc.ZONE svc.ZONE ZONE of the client's pod "
                       f"in each stanza with pods verified, "
                       f"then {HOST_RESOLV_CONF} search {' '.join(search) or '(none)'}")
    return AutoPath(parsed.zones, search, from_stanzas=True)
