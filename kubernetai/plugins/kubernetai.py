# -*- test-case-name: tests.test_plugins -*-
"""
kubernetai (and kubernetes): the stanzas of a server block, each one
cluster's answers for its zones, asked in Corefile order.

This is the chain's view of the stanzas only: zones, option names and
fallthrough.  A stanza has no data plane yet, so it never syncs and answers
every query in its zones with SERVFAIL, as a stanza does before its first
sync; names outside every stanza's zones go on down the chain.
"""

from __future__ import annotations

from dataclasses import dataclass

from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import IHandler, PluginError, Request, ServerConfig
from kubernetai.corefile import Directive, normalize_zone, reverse_zones

STANZA_OPTIONS = frozenset(
    {
        "endpoint", "tls", "kubeconfig", "namespaces", "namespace_labels", "labels", "pods",
        "endpoint_pod_names", "ttl", "noendpoints", "fallthrough", "ignore", "startup_timeout",
        "apiserver_qps", "apiserver_burst", "apiserver_max_inflight", "multicluster", "zonal",
    }
)


@dataclass(frozen=True)
class Stanza:
    """One C{kubernetai ZONES... { ... }} directive."""

    zones: tuple[str, ...]
    directive: Directive

    def serves(self, name: str) -> bool:
        return any(zone == "." or name == zone or name.endswith("." + zone) for zone in self.zones)


@implementer(IHandler)
class Kubernetai:
    """The stanzas of one server block, in Corefile order."""

    name = "kubernetai"
    next = None

    def __init__(self, stanzas: list[Stanza]) -> None:
        self.stanzas = stanzas

    def serve(self, request: Request):
        for stanza in self.stanzas:
            if stanza.serves(request.name):
                raise PluginError(
                    stanza.directive.name, f"stanza for {' '.join(stanza.zones)} has not synced"
                )
        return self.next.serve(request)


def setup(directives: list[Directive], config: ServerConfig) -> Kubernetai:
    """One stanza per C{kubernetai} or C{kubernetes} directive, in Corefile order."""
    stanzas = [parse_stanza(directive, config) for directive in directives]
    for stanza in stanzas:
        config.plan.append(f"{stanza.directive.name} {' '.join(stanza.zones)}")
    return Kubernetai(stanzas)


def parse_stanza(directive: Directive, config: ServerConfig) -> Stanza:
    """The zones of a stanza (its arguments, else the server block's), its options checked by name."""
    if directive.args:
        zones = tuple(zone for arg in directive.args for zone in _zones_of(directive, arg))
    else:
        zones = tuple(address.zone for address in config.zones)
    for option in directive.block:
        if option.name not in STANZA_OPTIONS:
            raise options.error(option, f"unknown property {option.name!r}")
    return Stanza(zones, directive)


def _zones_of(directive: Directive, arg: str) -> list[str]:
    if "/" not in arg:
        return [normalize_zone(arg)]
    try:
        return reverse_zones(arg)
    except ValueError as err:
        raise options.error(directive, f"invalid zone {arg!r}: {err}") from None
