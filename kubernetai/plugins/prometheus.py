# -*- test-case-name: tests.test_prometheus -*-
"""
prometheus: C{/metrics} on C{ADDRESS} (default C{:9153}) with CoreDNS's
metric names and labels, so existing dashboards and alerts work:
C{coredns_dns_requests_total}, C{coredns_dns_responses_total},
C{coredns_dns_request_duration_seconds}, sizes, C{coredns_dns_do_requests_total},
C{coredns_plugin_enabled}, C{coredns_build_info}, and what the other
plugins register (cache, forward, proxy, reload, kubernetes, and our
per-stanza C{kubernetai_stanza_*} gauges, by the stanza's label), plus the
process's own.  No two series share a name and labels: CoreDNS's
C{coredns_kubernetes_*}, process-wide in CoreDNS, add up the stanzas on one
API server.

Queries of the server blocks that have the plugin are counted; the
C{plugin} label of responses is left empty (we do not track which plugin
wrote an answer).
"""

from __future__ import annotations

import platform
import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from twisted.logger import Logger
from twisted.names import dns
from twisted.web import resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from kubernetai import __version__, options
from kubernetai.chain import IHandler, Request, Response, ServerConfig
from kubernetai.corefile import Directive
from kubernetai.httpservice import listener, parse_address
from kubernetai.metrics import (
    NAMESPACE, SIZE_BUCKETS, TIME_BUCKETS, Counts, Families, Histograms, gauge, server_label,
)
from kubernetai.dnsnames import rcode_name, type_name

log = Logger(namespace="kubernetai.plugins.prometheus")

DEFAULT_ADDRESS = ":9153"
# A page takes milliseconds to render (4 ms for one stanza, more with every stanza and block): it is
# rendered this long at a time on the reactor, at least one family at a time, queries answered between.
RENDER_SLICE = 0.001
MONITORED_TYPES = frozenset({
    dns.A, dns.AAAA, dns.CNAME, 48, 43, dns.MX, 50, 47, dns.NS, dns.PTR, 46, dns.SOA, dns.SRV, dns.TXT, 65, 64,
    dns.IXFR, dns.AXFR, dns.ALL_RECORDS,
})


class DNSMetrics:
    """The daemon's query counts, one set for every server block with the plugin."""

    def __init__(self) -> None:
        labels = ("server", "zone", "view")
        self.requests = Counts(f"{NAMESPACE}_dns_requests_total", "Counter of DNS requests made per zone, protocol and family.",
                               labels + ("proto", "family", "type"))
        self.do_requests = Counts(f"{NAMESPACE}_dns_do_requests_total", "Counter of DNS requests with DO bit set per zone.",
                                  labels)
        self.responses = Counts(f"{NAMESPACE}_dns_responses_total", "Counter of response status codes.",
                                labels + ("rcode", "plugin"))
        self.durations = Histograms(f"{NAMESPACE}_dns_request_duration_seconds",
                                    "Histogram of the time (in seconds) each request took per zone.", labels, TIME_BUCKETS)
        self.request_sizes = Histograms(f"{NAMESPACE}_dns_request_size_bytes",
                                        "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.",
                                        labels + ("proto",), SIZE_BUCKETS)
        self.response_sizes = Histograms(f"{NAMESPACE}_dns_response_size_bytes",
                                         "Size of the returned response in bytes.", labels + ("proto",), SIZE_BUCKETS)
        self.enabled: set[tuple[str, str, str, str]] = set()

    def record(self, request: Request, response: Response, reply: bytes, duration: float):
        """Count one answered query; the function that counts the same reply sent again to another client."""
        base = (server_label(request.local), request.zone, "")
        qtype = type_name(request.qtype) if request.qtype in MONITORED_TYPES else "other"
        request_key = base + (request.protocol, "", qtype)
        rcode_key = base + (rcode_name(response.rcode), "")
        proto_key = base + (request.protocol,)
        sizes = (request.size, len(reply))
        # What a kept reply's count needs of the query, and nothing more: it lives as long as the reply.
        dnssec_ok = request.dnssec_ok

        def count(client_host: str, seconds: float, grown: int = 0) -> None:
            family = "2" if ":" in client_host and not client_host.startswith("::ffff:") else "1"
            self.requests.inc(request_key[:4] + (family,) + request_key[5:])
            if dnssec_ok:
                self.do_requests.inc(base)
            self.responses.inc(rcode_key)
            self.durations.observe(base, seconds)
            self.request_sizes.observe(proto_key, sizes[0] + grown)
            self.response_sizes.observe(proto_key, sizes[1] + grown)

        count(request.client[0], duration)
        return count

    def families(self):
        yield from (counts.family() for counts in (self.requests, self.do_requests, self.responses))
        yield from (histograms.family() for histograms in (self.durations, self.request_sizes, self.response_sizes))
        yield gauge(f"{NAMESPACE}_plugin_enabled", "A metric that indicates whether a plugin is enabled on per server and zone basis.",
                    ("server", "zone", "view", "name"), ((key, 1) for key in sorted(self.enabled)))
        yield gauge(f"{NAMESPACE}_build_info", "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.",
                    ("version", "revision", "goversion"), [((__version__, "", f"python{platform.python_version()}"), 1)])


@implementer(IHandler)
class Metrics:
    """Counts every query of its server block once its reply is written."""

    name = "prometheus"
    next = None

    def __init__(self, counts: DNSMetrics) -> None:
        self.counts = counts

    def serve(self, request: Request):
        request.observe_reply(self._record)
        return self.next.serve(request)

    def passes_alike(self, zone: str) -> bool:
        """Every query is counted by its zone, type and rcode, and its sizes (L{kubernetai.alike}'s C{grown})."""
        return True

    def _record(self, request: Request, response: Response, reply: bytes):
        return self.counts.record(request, response, reply, max(0.0, time.monotonic() - request.received))


class _Collector:
    """Everything registered in the daemon's metric sources, read at scrape time."""

    def __init__(self, shared) -> None:
        self.shared = shared

    def collect(self):
        for source in self.shared.metric_sources:
            yield from source()


class MetricsPage(resource.Resource):
    """C{GET /metrics} in Prometheus's text format, rendered in slices of C{slice_seconds}."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry, clock, slice_seconds: float = RENDER_SLICE) -> None:
        super().__init__()
        self.registry = registry
        self.clock = clock
        self.slice_seconds = slice_seconds

    def render_GET(self, request):
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        SlicedPage(request, iter(self.registry.collect()), self.clock, self.slice_seconds).render()
        return NOT_DONE_YET


class SlicedPage:
    """One scrape's page: its families collected and written out a slice at a time, each slice
    started anew by the reactor once it has answered what waits, until the page is done or the
    client has gone."""

    def __init__(self, request, families, clock, slice_seconds: float) -> None:
        self.request = request
        self.families = families
        self.clock = clock
        self.slice_seconds = slice_seconds
        self.parts: list[bytes] = []
        self.gone = False
        request.notifyFinish().addErrback(self._gone)

    def _gone(self, _) -> None:
        self.gone = True

    def render(self) -> None:
        """Render families for one slice, then leave the rest to a later turn of the reactor."""
        if self.gone:
            return
        started = time.monotonic()
        try:
            for family in self.families:
                self.parts.append(generate_latest(Families([family])))
                if time.monotonic() - started >= self.slice_seconds:
                    self.clock.callLater(0, self.render)
                    return
        except Exception:
            log.failure("cannot render /metrics")
            self.request.setResponseCode(500)
            self.request.finish()
            return
        self.request.write(b"".join(self.parts))
        self.request.finish()


def daemon_metrics(config: ServerConfig) -> tuple[DNSMetrics, CollectorRegistry]:
    """The daemon's DNSMetrics and registry, made by the first block that asks."""
    shared = config.shared
    if shared.dns_metrics is None:
        counts = DNSMetrics()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(shared))
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        shared.dns_metrics = (counts, registry)
        shared.metric_sources.append(counts.families)
    return shared.dns_metrics


def setup(directives: list[Directive], config: ServerConfig) -> Metrics:
    """C{prometheus [ADDRESS]}, once per server block."""
    directive = options.only_once(directives)
    options.no_block(directive)
    (address,) = options.arg_count(directive, 0, 1) or (DEFAULT_ADDRESS,)
    host, port = parse_address(directive, address)
    counts, registry = daemon_metrics(config)
    listener(config, host, port).attach("metrics", lambda: MetricsPage(registry, config.reactor))
    hosts = config.bind_hosts or [""]
    counts.enabled |= {
        (server_label((host, zone.port)), zone.zone, "", plugin.name)
        for host in hosts
        for zone in config.zones
        for plugin in config.block.directives
    }
    config.plan.append(f"prometheus {address}/metrics")
    return Metrics(counts)
