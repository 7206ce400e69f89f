# -*- test-case-name: tests.test_kubernetes_stanza -*-
"""
kubernetai (and kubernetes): the stanzas of a server block, each one
cluster's answers for its zones, asked in Corefile order.

A query goes to the first stanza whose zones hold its name.  An NXDOMAIN
from a stanza with C{fallthrough} (for that name) goes on to the next
stanza whose zones hold it, and after the last to the next plugin; with
nothing after, the NXDOMAIN stands.  NODATA never falls through.  A stanza
that has not synced answers what would be NXDOMAIN with SERVFAIL, as
CoreDNS does.  Stanzas with one C{merge GROUP} answer together, at the
place of the first of them (L{kubernetai.kubernetes.merge}).  Each stanza
syncs on its own threads; the daemon starts listening once every stanza has
synced or waited its startup_timeout.

Each stanza has a label unique in the daemon (L{stanza_label}): its C{name}
option, else C{#N ZONES}, its place among the Corefile's stanzas and its
zones.  Its metrics carry it; /ready, --validate and the log say
C{kubernetai LABEL (URL)}.
"""

from __future__ import annotations

import dataclasses
import time
from urllib.parse import urlsplit

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.names import dns
from zope.interface import implementer

from kubernetai import options
from kubernetai.alike import Alike
from kubernetai.chain import EndOfChain, IHandler, Request, Response, ServerConfig
from kubernetai.corefile import Directive
from kubernetai.hostaddresses import local_ips
from kubernetai.kubernetes.cluster import PROGRAMMING_BUCKETS, Cluster
from kubernetai.kubernetes.config import parse_stanza
from kubernetai.kubernetes.connection import ConnectionSetupError, api_client
from kubernetai.kubernetes.merge import merged_order
from kubernetai.kubernetes.stanza import Stanza, stanza_label
from kubernetai.metrics import DEFAULT_BUCKETS, NAMESPACE, Counts, Histograms, counter, gauge, instances
from kubernetai.reuse import all_valid, also_valid_while

log = Logger(namespace="kubernetai.plugins.kubernetai")


@implementer(IHandler)
class Kubernetai:
    """The stanzas of one server block, in Corefile order; C{order}: as queries ask them (each
    C{merge} group in one place, L{kubernetai.kubernetes.merge})."""

    name = "kubernetai"
    next = None

    def __init__(self, stanzas: list[Stanza], order: list | None = None) -> None:
        self.stanzas = stanzas
        self.order = stanzas if order is None else order

    def serve(self, request: Request):
        fell_through = None
        handed_on = []
        asked = []
        for stanza in self.order:
            zone = stanza.zone_of(request.name)
            if zone is None:
                continue
            if stanza.config.failover is not None and stanza.hands_on(time.time()):
                handed_on.append(stanza.still_hands_on())
                continue
            response = stanza.answer(request.qname, request.name, request.qtype, zone)
            asked.append((stanza, zone))
            response.valid_while = all_valid(*handed_on, response.valid_while)
            if fell_through is not None:
                response.valid_while = all_valid(fell_through.valid_while, response.valid_while)
            if not stanza.falls_through(request.name, response):
                if response.rcode == dns.ENAME and not handed_on and response.valid_while is not None:
                    response.alike = self.alike(asked, response.valid_while)
                return complete(request, response, stanza) if response.follow else response
            fell_through = response
        if fell_through is None and not handed_on:
            return self.next.serve(request)
        if fell_through is None:
            return also_valid_while(self.next.serve(request), all_valid(*handed_on))
        if isinstance(self.next, EndOfChain):
            return fell_through
        return also_valid_while(self.next.serve(request), fell_through.valid_while)


    def alike(self, asked: list, holds) -> Alike | None:
        """The NXDOMAIN of the last of the stanzas C{asked} (with their zones) as their answer to every
        name of its zone that all of them deny (L{kubernetai.alike}), when each stanza up to it treats
        that zone's names alike; else None."""
        last, zone = asked[-1]
        for stanza in self.order:
            if not isinstance(stanza, Stanza) or stanza.config.failover is not None or not stanza.treats_alike(zone):
                return None
            if stanza is last:
                break
        if any(asked_zone != zone for _, asked_zone in asked):
            return None
        if len(asked) == 1:
            return Alike(zone, lambda labels: last.denies(labels, zone), holds, self)
        stanzas = [stanza for stanza, _ in asked]
        return Alike(zone, lambda labels: all(stanza.denies(labels, zone) for stanza in stanzas), holds, self)


def complete(request: Request, response: Response, stanza) -> defer.Deferred:
    """Resolve an ExternalName's target outside our zones through the server, as CoreDNS's upstream.

    Found: the CNAME and what the lookup answered.  The lookup failed: no CNAME, so NODATA.
    """
    target, qtype = response.follow

    def found(resolved: Response) -> Response:
        return dataclasses.replace(response, answers=response.answers + resolved.answers,
                                   truncated=response.truncated or resolved.truncated, follow=None,
                                   valid_while=None)

    def failed(_failure) -> Response:
        zone = stanza.zone_of(request.name)
        return stanza.nodata(request.qname, zone)

    return request.lookup(target, qtype).addCallbacks(found, failed)


class StanzaService(service.Service):
    """Starts a stanza's cluster with the daemon (unless a reload kept it running), stops it with it;
    the cluster's log lines name the stanza as the running Corefile does."""

    def __init__(self, stanza: Stanza) -> None:
        self.stanza = stanza

    @property
    def cluster(self):
        return self.stanza.cluster

    def startService(self) -> None:
        super().startService()
        self.stanza.start()

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
        label = unique_label(directive, stanza_config, config.shared.stanzas)
        try:
            api, url = api_client(stanza_config)
        except ConnectionSetupError as err:
            raise options.error(directive, str(err)) from None
        cluster = reuse(config.shared.reusable, stanza_config)
        if cluster is None and config.shared.fed:
            raise options.error(directive, "the supervisor has no watches for this stanza: "
                                           "the Corefile changed after the supervisor read it")
        if cluster is None:
            cluster = Cluster(stanza_config, api, url, config.reactor)
        stanza = Stanza(directive.name, stanza_config, cluster, addresses, label)
        stanzas.append(stanza)
        config.shared.stanzas.append(stanza)
        config.shared.readiness.append((stanza.describe(), lambda cluster=cluster: cluster.synced))
        config.services.append(StanzaService(stanza))
        config.startup_waits.append(lambda stanza=stanza: wait_for_sync(stanza, config.reactor))
        config.plan.append(plan_line(stanza))
    instances(config, "kubernetai", stanza_families).extend(stanzas)
    return Kubernetai(stanzas, merged_order(stanzas, directives))


def unique_label(directive: Directive, stanza_config, others: list[Stanza]) -> str:
    """The label of the stanza after C{others}; a C{name} one of them has is an error at its line."""
    label = stanza_label(stanza_config, len(others) + 1)
    if any(other.label == label for other in others):
        option = [option for option in directive.block if option.name == "name"][-1]
        raise options.error(option, f"stanza name {label!r} is already used by another stanza")
    return label


def reuse(reusable: dict, stanza_config):
    """A running cluster a reload keeps for a stanza with these options (the first of those left), or None."""
    clusters = reusable.get(stanza_config)
    return clusters.pop(0) if clusters else None


def plan_line(stanza: Stanza) -> str:
    """The stanza as --validate shows it: its name, and its zones when a C{name} option hides them."""
    zones = f" for {' '.join(stanza.config.zones)}" if stanza.config.name else ""
    merge = f" merge {stanza.config.merge}" if stanza.config.merge else ""
    return f"{stanza.describe()}{zones}{' fallthrough' if stanza.config.fallthrough else ''}{merge}"


def stanza_families(stanzas: list[Stanza]):
    """CoreDNS's kubernetes metrics (REST client, DNS programming latency), and ours per stanza.

    CoreDNS keeps the former process-wide (client-go's and the plugin's globals), without a
    stanza label: stanzas on one API server add up into one series per host, as every
    kubernetes plugin of a CoreDNS process does.
    """
    requests = Counts(f"{NAMESPACE}_kubernetes_rest_client_requests_total",
                      "Number of HTTP requests, partitioned by status code, method, and host.",
                      ("code", "method", "host"))
    rest = [Histograms(name, documentation, ("verb", "host"), DEFAULT_BUCKETS)
            for name, documentation, _ in REST_HISTOGRAMS]
    programming = Histograms(f"{NAMESPACE}_kubernetes_dns_programming_duration_seconds",
                             "Histogram of the time (in seconds) it took to program a dns instance.", ("service_kind",),
                             PROGRAMMING_BUCKETS)
    for stanza in stanzas:
        programming.add(stanza.cluster.programming)
        if not stanza.cluster.watching:
            continue
        limits, host = stanza.cluster.limits, (urlsplit(stanza.cluster.url).netloc,)
        requests.add(limits.requests, host)
        for merged, (_, _, attribute) in zip(rest, REST_HISTOGRAMS):
            merged.add(getattr(limits, attribute), host)
    yield requests.family()
    yield from (merged.family() for merged in rest)
    yield programming.family()
    yield from stanza_gauges(stanzas)


REST_HISTOGRAMS = (
    (f"{NAMESPACE}_kubernetes_rest_client_request_duration_seconds", "Request latency in seconds. Broken down by verb and host.", "latency"),
    (f"{NAMESPACE}_kubernetes_rest_client_rate_limiter_duration_seconds", "Client side rate limiter latency in seconds. Broken down by verb and host.", "rate_limited"),
)


def stanza_gauges(stanzas: list[Stanza]):
    """Ours: per stanza, whether it synced, how long it has been stale, what it holds, how its watches fare."""
    now = time.time()
    statuses = [(stanza.label, stanza.cluster.status()) for stanza in stanzas]
    yield gauge("kubernetai_stanza_synced", "Whether the stanza has listed everything from its API server (1) or not (0).",
                ("stanza",), (((name,), float(status["synced"])) for name, status in statuses))
    yield gauge("kubernetai_stanza_stale_seconds", "How long a watch of the stanza has been down (0 when all are up).",
                ("stanza",), (((name,), now - status["stale_since"] if status["stale_since"] else 0.0)
                              for name, status in statuses))
    yield gauge("kubernetai_stanza_last_event_timestamp_seconds", "Unix time of the last event the stanza received.",
                ("stanza",), (((name,), status["last_event"] or 0.0) for name, status in statuses))
    yield gauge("kubernetai_stanza_objects", "Objects the stanza holds, by kind.", ("stanza", "kind"),
                (((name, kind), count) for name, status in statuses for kind, count in status["objects"].items()))
    # A worker's copies of its supervisor's watches are the supervisor's to count.
    watching = [(stanza.label, status) for stanza, (_, status) in zip(stanzas, statuses) if stanza.cluster.watching]
    yield counter("kubernetai_stanza_watch_restarts_total", "Times a watch of the stanza failed and was started again.",
                  ("stanza", "kind", "namespace"),
                  (((name, watch["kind"], watch["namespace"] or ""), watch["restarts"])
                   for name, status in watching for watch in status["watches"]))
    yield counter("kubernetai_stanza_lists_total", "Times a watch of the stanza listed everything (once, plus once per 410 Gone).",
                  ("stanza", "kind", "namespace"),
                  (((name, watch["kind"], watch["namespace"] or ""), watch["lists"])
                   for name, status in watching for watch in status["watches"]))


def wait_for_sync(stanza: Stanza, reactor) -> defer.Deferred:
    """Fires once the stanza has synced or its startup_timeout has passed, whichever comes first."""
    synced = stanza.cluster.when_synced()
    synced.addTimeout(stanza.config.startup_timeout, reactor)

    def not_yet(failure):
        failure.trap(defer.TimeoutError)
        log.warn("{stanza}: not synced after {timeout}s; serving, answering SERVFAIL until it syncs",
                 stanza=stanza.describe(), timeout=stanza.config.startup_timeout)

    return synced.addErrback(not_yet)
