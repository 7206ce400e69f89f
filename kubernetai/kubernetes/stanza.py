# -*- test-case-name: tests.test_kubernetes_stanza -*-
"""
One stanza: its options, its cluster's live data and its answers, and a
Twisted C{IResolver} over it for use on its own with twisted.names.

The resolver follows twisted.names' conventions: a lookup fires with
(answers, authority, additional); NODATA fires with no answers and the SOA
as authority; NXDOMAIN fails with L{StanzaNameError} (or, when the stanza
falls through for that name, L{StanzaFallthrough}, a C{DomainError} so that
a C{ResolverChain} asks the next resolver), both carrying the SOA.
L{start_resolver} makes one, running, from a stanza's Corefile text.
"""

from __future__ import annotations

import math

from twisted.internet import defer
from twisted.internet.interfaces import IResolver
from twisted.names import common, dns, error
from zope.interface import implementer

from kubernetai.chain import Response
from kubernetai.corefile import CorefileError, parse_directives
from kubernetai.hostaddresses import local_ips
from kubernetai.kubernetes.cluster import Cluster
from kubernetai.kubernetes.config import StanzaConfig, parse_stanza
from kubernetai.kubernetes.connection import api_client
from kubernetai.kubernetes.entries import View
from kubernetai.kubernetes.records import answer, denial
from kubernetai.kubernetes.names import is_reverse
from kubernetai.zones import in_zone, most_specific

# Names under a stanza's zone with records though neither a service's nor a pod's.
NAMED_HERE = ([b"ns", b"dns"], [b"dns-version"])
SVC, POD = b"svc", b"pod"


def stanza_label(config: StanzaConfig, position: int) -> str:
    """What metrics, /ready and the logs call a stanza: its C{name} option, else C{#POSITION ZONES},
    its place among the Corefile's stanzas (from 1) and its zones."""
    return config.name or f"#{position} {' '.join(config.zones)}"


class Stanza:
    """One stanza: its options, its cluster's data, and its answers.

    C{name} is the directive's (C{kubernetai} or C{kubernetes}); C{label} is unique in the daemon.
    """

    def __init__(self, name: str, config: StanzaConfig, cluster, addresses: tuple[str, ...],
                 label: str | None = None) -> None:
        self.name = name
        self.config = config
        self.cluster = cluster
        self.addresses = addresses
        self.label = label or stanza_label(config, 1)

    def start(self) -> None:
        """Start the cluster's watches, unless they run already (a reload kept them); its log names this stanza."""
        self.cluster.link.name = self.describe()
        if not self.cluster.threads:
            self.cluster.start()

    def describe(self) -> str:
        """The stanza as /ready and the logs name it: directive, label and API server."""
        return f"{self.name} {self.label} ({self.cluster.url})"

    def zone_of(self, name: str) -> str | None:
        """The most specific of this stanza's zones holding C{name}, or None."""
        return most_specific(name, self.config.zones)

    def answer(self, qname: bytes, name: str, qtype: int, zone: str) -> Response:
        """This stanza's reply from its data as it is now; SERVFAIL for NXDOMAIN before the first sync."""
        cluster = self.cluster
        snapshot, synced = cluster.snapshot, cluster.synced
        response = answer(View(self.config, snapshot, self.addresses), qname, name, qtype, zone)
        if response.rcode == dns.ENAME and not synced:
            response = Response(rcode=dns.ESERVER, authority=response.authority, authoritative=True)
        if self.config.failover is None or self.config.failover == math.inf:
            response.valid_while = unchanged_since(cluster, snapshot.generation, synced)
        return response

    def nodata(self, qname: bytes, zone: str) -> Response:
        """NOERROR without answers, with this stanza's SOA for C{zone}."""
        return denial(self.view(), qname, zone, dns.OK)

    def view(self) -> View:
        return View(self.config, self.cluster.snapshot, self.addresses)

    def hands_on(self, now: float) -> bool:
        """With C{failover}: whether this stanza lets others answer, unsynced or stale too long."""
        stale = self.config.failover
        if stale is None:
            return False
        if not self.cluster.synced:
            return True
        since = self.cluster.stale_since()
        return since is not None and now - since > stale

    def still_hands_on(self):
        """A check that holds while this stanza keeps handing queries on: until it syncs (None: time decides)."""
        if self.config.failover != math.inf:
            return None
        cluster = self.cluster
        return lambda: not cluster.synced

    def falls_through(self, name: str, response: Response) -> bool:
        """Whether this NXDOMAIN goes on to the next stanza or plugin."""
        fallthrough = self.config.fallthrough
        return response.rcode == dns.ENAME and fallthrough is not None and fallthrough.through(name)

    def treats_alike(self, zone: str) -> bool:
        """Whether every name of C{zone} (not a reverse zone) reaches this stanza the same way: none is in
        its zones; or all are, with C{zone} the most specific, and a miss falls through for all or none."""
        zones = self.config.zones
        if not any(in_zone(zone, own) or in_zone(own, zone) for own in zones):
            return True
        if zone not in zones or any(own != zone and in_zone(own, zone) for own in zones) or is_reverse(zone):
            return False
        fallthrough = self.config.fallthrough
        return fallthrough is None or fallthrough.alike(zone)

    def denies(self, labels: bytes, zone: str) -> bool:
        """Whether a name of C{zone} whose labels left of the zone are C{labels} (wire form, lower case,
        ASCII) is one this stanza's data has nothing for, whatever the query type but SOA (NXDOMAIN):
        a name ending in neither C{svc} nor C{pod} (but C{ns.dns} and C{dns-version}), C{NAMESPACE.svc}
        or anything under it when the namespace is not there, C{SERVICE.NAMESPACE.svc} or anything
        under it when the service is not.  False means: not known here."""
        parts = wire_labels(labels)
        if not parts or b"." in labels and any(b"." in part for part in parts):
            return False
        kind = parts[-1]
        if kind != SVC:
            return kind != POD and parts not in NAMED_HERE
        if len(parts) < 2:
            return False
        namespace = parts[-2].decode("ascii")
        view = self.view()
        if not view.namespace_exposed(namespace):
            return True
        if len(parts) == 2:
            return False
        service = parts[-3].decode("ascii")
        if view.is_multicluster(zone):
            return view.snapshot.service_import(namespace, service) is None
        return view.snapshot.service(namespace, service) is None


def wire_labels(labels: bytes) -> list[bytes]:
    """The labels of a name's wire form (each with its length first, no root octet)."""
    parts = []
    offset = 0
    while offset < len(labels):
        end = offset + 1 + labels[offset]
        parts.append(labels[offset + 1 : end])
        offset = end
    return parts


def unchanged_since(cluster, generation: int, synced: bool):
    """A check that holds while C{cluster} serves the snapshot of C{generation}, as synced as it was.

    It holds the number, never the snapshot: a reply kept for a name nobody asks again must not keep
    the tables of an old snapshot alive.
    """
    return lambda: cluster.snapshot.generation == generation and cluster.synced is synced


class StanzaNameError(error.AuthoritativeDomainError):
    """NXDOMAIN from a stanza that is authoritative for the name; C{authority} holds the SOA."""

    def __init__(self, name: bytes, authority: list) -> None:
        super().__init__(name)
        self.authority = authority


class StanzaFallthrough(error.DomainError):
    """NXDOMAIN from a stanza that lets the name fall through; C{authority} holds the SOA."""

    def __init__(self, name: bytes, authority: list) -> None:
        super().__init__(name)
        self.authority = authority


@implementer(IResolver)
class StanzaResolver(common.ResolverBase):
    """A stanza as a twisted.names resolver."""

    def __init__(self, stanza: Stanza) -> None:
        super().__init__()
        self.stanza = stanza

    def when_synced(self) -> defer.Deferred:
        """A Deferred fired once the stanza has listed everything from its API server."""
        return self.stanza.cluster.when_synced()

    def stop(self) -> None:
        """Stop the stanza's watches."""
        self.stanza.cluster.stop()

    def _lookup(self, name, cls, type, timeout=None):
        qname = name if isinstance(name, bytes) else name.encode("ascii")
        qname = qname.rstrip(b".")
        lower = qname.decode("ascii", "replace").lower() + "."
        zone = self.stanza.zone_of(lower)
        if zone is None or cls != dns.IN:
            return defer.fail(error.DomainError(qname))
        response = self.stanza.answer(qname, lower, type, zone)
        if response.rcode == dns.OK:
            return defer.succeed((response.answers, response.authority, response.additional))
        if response.rcode == dns.ENAME:
            if self.stanza.falls_through(lower, response):
                return defer.fail(StanzaFallthrough(qname, response.authority))
            return defer.fail(StanzaNameError(qname, response.authority))
        if response.rcode == dns.EREFUSED:
            return defer.fail(error.DNSQueryRefusedError(qname))
        return defer.fail(error.DNSServerError(qname))


def start_resolver(stanza: str | StanzaConfig, reactor=None, *, addresses=None,
                   filename: str = "stanza") -> StanzaResolver:
    """A stanza's resolver, its watches started: from its Corefile text (one C{kubernetai} or
    C{kubernetes} directive; its lines in errors are C{filename}'s) or its options.

    Without zones the stanza serves the root, as in a C{.} server block.  C{addresses} are what
    C{ns.dns} answers hold (default: this host's, as for a server block without C{bind}).  Raises
    L{CorefileError} for a mistake in the text,
    L{kubernetai.kubernetes.connection.ConnectionSetupError} for options that lead to no API server.
    """
    if reactor is None:
        from twisted.internet import reactor
    name, config = ("kubernetai", stanza) if isinstance(stanza, StanzaConfig) else parse_stanza_text(stanza, filename)
    cluster = Cluster(config, *api_client(config), reactor)
    resolver = StanzaResolver(Stanza(name, config, cluster, local_ips([]) if addresses is None else tuple(addresses)))
    resolver.stanza.start()
    return resolver


def parse_stanza_text(text: str, filename: str) -> tuple[str, StanzaConfig]:
    """The directive's name and the options of the one stanza in C{text}."""
    directives = parse_directives(text, filename)
    names = [directive.name for directive in directives]
    if names not in (["kubernetai"], ["kubernetes"]):
        found = " ".join(names) or "none"
        raise CorefileError(filename, 0, f"expected one kubernetai or kubernetes directive, found {found}")
    return names[0], parse_stanza(directives[0], ["."])
