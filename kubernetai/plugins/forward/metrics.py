# -*- test-case-name: tests.test_forward,tests.test_prometheus -*-
"""
forward's metrics, as CoreDNS names them (C{coredns_proxy_*},
C{coredns_forward_*}), and ours: the upstream replies not taken.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client.core import HistogramMetricFamily

from kubernetai.metrics import NAMESPACE, counter

if TYPE_CHECKING:
    from kubernetai.plugins.forward.handler import Forward


def forward_families(forwards: list[Forward]):
    """forward's and its proxies' metrics, as CoreDNS names them, and ours: the replies not taken."""
    proxies = [proxy for forward in forwards for proxy in forward.proxies]
    durations = HistogramMetricFamily(f"{NAMESPACE}_proxy_request_duration_seconds",
                                      "Histogram of the time each request took.", labels=("proxy_name", "to", "rcode"))
    for proxy in proxies:
        for (rcode,), buckets, total in proxy.durations.samples():
            durations.add_metric(["forward", str(proxy.address), rcode], buckets, sum_value=total)
    yield durations
    yield counter(f"{NAMESPACE}_proxy_healthcheck_failures_total", "Counter of the number of failed healthchecks.",
                  ("proxy_name", "to"), ((("forward", str(p.address)), p.healthcheck_failures) for p in proxies))
    for result in ("hits", "misses"):
        yield counter(f"{NAMESPACE}_proxy_conn_cache_{result}_total", f"Counter of connection cache {result} per upstream and protocol.",
                      ("proxy_name", "to", "proto"),
                      ((("forward", str(p.address), proto), count) for p in proxies
                       for (kind, proto), count in p.connection_reuse.values.items() if kind == result))
    yield counter(f"{NAMESPACE}_forward_healthcheck_broken_total", "Counter of the number of complete failures of the healthchecks.",
                  (), [((), sum(f.healthcheck_broken for f in forwards))])
    yield counter(f"{NAMESPACE}_forward_max_concurrent_rejects_total", "Counter of the number of queries rejected because the concurrent queries were at maximum.",
                  (), [((), sum(f.rejected for f in forwards))])
    yield counter("kubernetai_forward_rejected_replies_total",
                  "Counter of upstream replies not taken, by why: malformed, wrong id, wrong question.",
                  ("to", "reason"), (((str(p.address), reason), count)
                                     for p in proxies for (reason,), count in p.rejected.values.items()))
