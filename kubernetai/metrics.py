# -*- test-case-name: tests.test_prometheus -*-
"""
Counting for the prometheus plugin, cheap enough for the query path: plain
dicts of counts and bucket arrays keyed by label values, turned into
Prometheus metric families only when /metrics is scraped.

A plugin that has figures to export registers a source in
C{config.shared.metric_sources}: a callable returning metric families
(prometheus_client's C{*MetricFamily}), read at scrape time.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from contextlib import nullcontext
from typing import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

NAMESPACE = "coredns"
TIME_BUCKETS = tuple(0.00025 * 2**i for i in range(16))
SIZE_BUCKETS = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3)
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Counts:
    """A counter by label values; C{shared} when threads other than the reactor's count too."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...], shared: bool = False) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.values: dict[tuple, float] = {}
        self.lock = threading.Lock() if shared else None

    def inc(self, key: tuple, amount: float = 1) -> None:
        if self.lock is None:
            self.values[key] = self.values.get(key, 0) + amount
            return
        with self.lock:
            self.values[key] = self.values.get(key, 0) + amount

    def add(self, other: Counts, extra: tuple = ()) -> None:
        """Add C{other}'s counts to ours, each key extended by the label values C{extra}."""
        with other.lock or nullcontext():
            counted = list(other.values.items())
        for key, amount in counted:
            self.inc(key + extra, amount)

    def family(self) -> CounterMetricFamily:
        return counter(self.name, self.documentation, self.labels, list(self.values.items()))


class Histograms:
    """A histogram by label values: per key, counts per bucket, a sum and a count; C{shared} as for Counts."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...], buckets: tuple[float, ...],
                 shared: bool = False) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.bounds = buckets
        self.values: dict[tuple, list] = {}
        self.lock = threading.Lock() if shared else None

    def observe(self, key: tuple, value: float) -> None:
        if self.lock is None:
            self._observe(key, value)
            return
        with self.lock:
            self._observe(key, value)

    def _observe(self, key: tuple, value: float) -> None:
        state = self.values.get(key)
        if state is None:
            state = self.values[key] = [[0] * (len(self.bounds) + 1), 0.0]
        state[0][bisect_left(self.bounds, value)] += 1
        state[1] += value

    def add(self, other: Histograms, extra: tuple = ()) -> None:
        """Add C{other}'s observations (same buckets) to ours, each key extended by the label values C{extra}."""
        with other.lock or nullcontext():
            observed = [(key, list(counts), total) for key, (counts, total) in other.values.items()]
        for key, counts, total in observed:
            state = self.values.setdefault(key + extra, [[0] * (len(self.bounds) + 1), 0.0])
            state[0] = [mine + theirs for mine, theirs in zip(state[0], counts)]
            state[1] += total

    def samples(self):
        """(label values, cumulative buckets, sum) per key, as HistogramMetricFamily takes them."""
        for key, (counts, total) in list(self.values.items()):
            running, buckets = 0, []
            for bound, count in zip(self.bounds + (float("inf"),), counts):
                running += count
                buckets.append(("+Inf" if bound == float("inf") else _bound_text(bound), running))
            yield key, buckets, total

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, buckets, total in self.samples():
            family.add_metric(list(key), buckets, sum_value=total)
        return family


class Families:
    """What C{generate_latest} takes: something with a C{collect()}."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def gauge(name: str, documentation: str, labels: tuple[str, ...], samples: Iterable[tuple[tuple, float]]):
    """A gauge family from (label values, value) pairs."""
    return _with_samples(GaugeMetricFamily(name, documentation, labels=labels), samples)


def counter(name: str, documentation: str, labels: tuple[str, ...], samples: Iterable[tuple[tuple, float]]):
    """A counter family from (label values, value) pairs."""
    return _with_samples(CounterMetricFamily(name, documentation, labels=labels), samples)


def _with_samples(family, samples: Iterable[tuple[tuple, float]]):
    for key, value in samples:
        family.add_metric(list(key), value)
    return family


def server_label(local: tuple[str, int] | None) -> str:
    """CoreDNS's C{server} label: C{dns://HOST:PORT}, the host empty when listening on every address."""
    if local is None:
        return "dns://"
    host, port = local
    if host in ("::", "0.0.0.0", ""):
        host = ""
    elif ":" in host:
        host = f"[{host}]"
    return f"dns://{host}:{port}"


def block_server(config) -> str:
    """The C{server} label of a server block: its first listen address."""
    host = config.bind_hosts[0] if config.bind_hosts else ""
    return server_label((host, config.zones[0].port)) if config.zones else "dns://"


def instances(config, kind: str, families) -> list:
    """The daemon-wide list of a plugin's instances, whose metrics C{families(instances)} exports.

    The first server block to ask registers the source; every block adds its instances.
    """
    if kind not in config.shared.plugin_instances:
        found: list = []
        config.shared.plugin_instances[kind] = found
        config.shared.metric_sources.append(lambda: families(found))
    return config.shared.plugin_instances[kind]


def _bound_text(bound: float) -> str:
    return repr(float(bound))
