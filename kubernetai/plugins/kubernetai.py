# -*- test-case-name: tests.test_kubernetes_stanza -*-
"""
kubernetai (and kubernetes): the stanzas of a server block, each one
cluster's answers for its zones, asked in Corefile order.

A query goes to the first stanza whose zones hold its name.  An NXDOMAIN
from a stanza with C{fallthrough} (for that name) goes on to the next
stanza whose zones hold it, and after the last to the next plugin; with
nothing after, the NXDOMAIN stands.  NODATA never falls through.  A stanza
that has not synced answers what would be NXDOMAIN with SERVFAIL, as
CoreDNS does.  Each stanza syncs on its own threads; the daemon starts
listening once every stanza has synced or waited its startup_timeout.
"""

from __future__ import annotations

import dataclasses

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import EndOfChain, IHandler, Request, Response, ServerConfig
from kubernetai.corefile import Directive
from kubernetai.interfaces import local_ips
from kubernetai.kubernetes.cluster import Cluster
from kubernetai.kubernetes.config import parse_stanza
from kubernetai.kubernetes.connection import ConnectionError, api_client, configuration, public_url
from kubernetai.kubernetes.stanza import Stanza

log = Logger(namespace="kubernetai.plugins.kubernetai")


@implementer(IHandler)
class Kubernetai:
    """The stanzas of one server block, in Corefile order."""

    name = "kubernetai"
    next = None

    def __init__(self, stanzas: list[Stanza]) -> None:
        self.stanzas = stanzas

    def serve(self, request: Request):
        fell_through = None
        for stanza in self.stanzas:
            zone = stanza.zone_of(request.name)
            if zone is None:
                continue
            response = stanza.answer(request.qname, request.name, request.qtype, zone)
            if not stanza.falls_through(request.name, response):
                return complete(request, response, stanza) if response.follow else response
            fell_through = response
        if fell_through is not None and isinstance(self.next, EndOfChain):
            return fell_through
        return self.next.serve(request)


def complete(request: Request, response: Response, stanza) -> defer.Deferred:
    """Resolve an ExternalName's target outside our zones through the server, as CoreDNS's upstream.

    Found: the CNAME and what the lookup answered.  The lookup failed: no CNAME, so NODATA.
    """
    target, qtype = response.follow

    def found(resolved: Response) -> Response:
        return dataclasses.replace(response, answers=response.answers + resolved.answers,
                                   truncated=response.truncated or resolved.truncated, follow=None)

    def failed(_failure) -> Response:
        zone = stanza.zone_of(request.name)
        return stanza.nodata(request.qname, zone)

    return request.lookup(target, qtype).addCallbacks(found, failed)


class StanzaService(service.Service):
    """Starts a stanza's cluster with the daemon (unless a reload kept it running), stops it with it."""

    def __init__(self, stanza: Stanza) -> None:
        self.stanza = stanza

    @property
    def cluster(self):
        return self.stanza.cluster

    def startService(self) -> None:
        super().startService()
        if not self.stanza.cluster.threads:
            self.stanza.cluster.start()

    def stopService(self):
        self.stanza.cluster.stop()
        return super().stopService()


def setup(directives: list[Directive], config: ServerConfig) -> Kubernetai:
    """One stanza per C{kubernetai} or C{kubernetes} directive, in Corefile order."""
    server_zones = [address.zone for address in config.zones]
    addresses = local_ips(config.bind_hosts)
    stanzas = []
    for directive in directives:
        stanza_config = parse_stanza(directive, server_zones)
        try:
            settings = configuration(stanza_config)
        except ConnectionError as err:
            raise options.error(directive, str(err)) from None
        cluster = config.shared.reusable.pop(stanza_config, None)
        if cluster is None:
            cluster = Cluster(stanza_config, api_client(settings), public_url(settings), config.reactor)
        stanza = Stanza(directive.name, stanza_config, cluster, addresses)
        stanzas.append(stanza)
        config.shared.stanzas.append(stanza)
        config.shared.readiness.append((stanza.describe(), lambda cluster=cluster: cluster.synced))
        config.services.append(StanzaService(stanza))
        config.startup_waits.append(lambda stanza=stanza: wait_for_sync(stanza, config.reactor))
        config.plan.append(f"{stanza.describe()}{' fallthrough' if stanza_config.fallthrough else ''}")
    return Kubernetai(stanzas)


def wait_for_sync(stanza: Stanza, reactor) -> defer.Deferred:
    """Fires once the stanza has synced or its startup_timeout has passed, whichever comes first."""
    synced = stanza.cluster.when_synced()
    synced.addTimeout(stanza.config.startup_timeout, reactor)

    def not_yet(failure):
        failure.trap(defer.TimeoutError)
        log.warn("{stanza}: not synced after {timeout}s; serving, answering SERVFAIL until it syncs",
                 stanza=stanza.describe(), timeout=stanza.config.startup_timeout)

    return synced.addErrback(not_yet)
