# -*- test-case-name: tests.test_kubernetes_watch,tests.test_feed -*-
"""
The data plane of one stanza: its watch threads, its index thread, and the
snapshot the resolver reads.

Watch threads only talk to the API server and reduce what they receive, and
share the stanza's L{Link} (its log of outages, its probe of /readyz); one
index thread (L{Index}) owns the L{Store}, applies what the watches send in
batches and publishes each new snapshot with a single reference assignment, so
the reactor thread reads C{cluster.snapshot} without a lock and never sees half
an update.  L{Cluster} is both, as a single process and a supervisor run them;
a worker's index is fed by its supervisor's instead (L{kubernetai.kubernetes.feed}).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable

from kubernetes import client
from twisted.internet import defer
from twisted.logger import Logger

from kubernetai.kubernetes.selector import EXISTS, Requirement, format_label_selector, parse_label_selector
from kubernetai.kubernetes.index import Snapshot, Store
from kubernetai.kubernetes.kinds import KINDS, Changed, Deleted, Kind, Listed
from kubernetai.kubernetes.objects import MULTICLUSTER_SERVICE_NAME_LABEL
from kubernetai.kubernetes.connection import readyz
from kubernetai.kubernetes.link import Link
from kubernetai.kubernetes.watch import Limits, TokenBucket, Watcher, WatchStatus, retry_after_header
from kubernetai.metrics import Histograms

log = Logger(namespace="kubernetai.kubernetes.cluster")

# client-go's rate limit when apiserver_qps / apiserver_burst are left at 0.
DEFAULT_QPS = 5.0
DEFAULT_BURST = 10
# Up to this many namespaces in `namespaces` are watched one by one; more are watched cluster-wide.
PER_NAMESPACE_WATCH_LIMIT = 10
BATCH_LIMIT = 10000
PROGRAMMING_BUCKETS = tuple(0.001 * 2**i for i in range(20))
# A probe of /readyz that takes longer than this counts as no answer.
PROBE_TIMEOUT = (2.0, 2.0)
_STOP = object()


def watch_plan(stanza) -> list[tuple[str, str | None, str | None]]:
    """(kind, namespace or None for all, label selector) of every watch a stanza needs.

    Namespaces are always watched (by name, filtered by namespace_labels): as in CoreDNS
    since 1.8.5, a namespace that does not exist in the cluster does not exist in DNS.
    With C{multicluster}, ServiceImports and multi-cluster EndpointSlices (by
    L{multicluster_selector}, even with C{noendpoints}) are watched too, as CoreDNS does;
    but CoreDNS lists imports with the namespace_labels selector, which is about namespaces'
    labels, not imports': imports go unfiltered here, and namespace_labels hides them by namespace.
    """
    selectors = {Kind.SERVICES: stanza.labels, Kind.ENDPOINT_SLICES: stanza.labels, Kind.PODS: None}
    kinds = [Kind.SERVICES]
    if stanza.watches_endpoints:
        kinds.append(Kind.ENDPOINT_SLICES)
    if stanza.watches_pods:
        kinds.append(Kind.PODS)
    if stanza.multicluster:
        kinds += [Kind.SERVICE_IMPORTS, Kind.MULTICLUSTER_ENDPOINT_SLICES]
        selectors.update({Kind.SERVICE_IMPORTS: None, Kind.MULTICLUSTER_ENDPOINT_SLICES: multicluster_selector(stanza.labels)})
    scopes: list[str | None] = [None]
    if stanza.namespaces and len(stanza.namespaces) <= PER_NAMESPACE_WATCH_LIMIT:
        scopes = sorted(stanza.namespaces)
    plan = [(kind, scope, selectors[kind]) for kind in kinds for scope in scopes]
    plan.append((Kind.NAMESPACES, None, stanza.namespace_labels))
    return plan


# What a stanza's identity must be allowed to do with each of its kinds (L{KindTable.api_resource}).
WATCH_VERBS = ("list", "watch")


def api_resources(stanza) -> frozenset[tuple[str, str]]:
    """(API group, resource) of everything the stanza lists and watches (L{WATCH_VERBS})."""
    return frozenset(KINDS[kind].api_resource for kind, _, _ in watch_plan(stanza))


def multicluster_selector(labels: str | None) -> str:
    """The stanza's C{labels} and the ServiceImport-name label, sorted by key as client-go sends them."""
    requirements = parse_label_selector(labels or "") + (Requirement(MULTICLUSTER_SERVICE_NAME_LABEL, EXISTS),)
    return format_label_selector(sorted(requirements, key=lambda requirement: requirement.key))


class Index:
    """One stanza's index thread and the snapshot the resolver reads.

    The thread applies what arrives on C{changes} (L{Listed}, L{Changed}, L{Deleted}) in batches,
    publishes a new snapshot after each, and calls C{tap} with the batch (a supervisor streams it to
    its workers, L{kubernetai.kubernetes.feed}); a callable put on C{changes} is called on the thread
    between batches.  The stanza is synced once every watch of its plan has listed.  C{link.name} is
    what the log calls the stanza.
    """

    # Whether this index's own watches talk to the API server (their metrics are its to export).
    watching = False

    def __init__(self, stanza, url: str, reactor, link: Link | None = None) -> None:
        self.stanza = stanza
        self.url = url
        self.reactor = reactor
        self.plan = watch_plan(stanza)
        self.link = link or Link(f"{' '.join(stanza.zones)} ({url})", len(self.plan))
        self.snapshot = Snapshot()
        self.synced = False
        self.synced_at: float | None = None
        self.store = Store()
        self.listed: set[tuple[str, str | None]] = set()
        self.programming = Histograms("", "", ("service_kind",), PROGRAMMING_BUCKETS)
        self.changes: queue.Queue = queue.Queue()
        self.tap: Callable[[list], None] | None = None
        self.threads: list[threading.Thread] = []
        self.started_at = 0.0
        self._sync_waiters: list[defer.Deferred] = []

    def start(self) -> None:
        """Start the index thread."""
        self.started_at = time.monotonic()
        self.threads.append(threading.Thread(target=self._index_loop, name="kubernetai-index", daemon=True))
        self.threads[-1].start()

    def stop(self) -> None:
        """Stop the index thread once it has applied what came before."""
        self.changes.put(_STOP)

    def when_synced(self) -> defer.Deferred:
        """A Deferred fired on the reactor thread once every watch has listed."""
        if self.synced:
            return defer.succeed(None)
        waiter: defer.Deferred = defer.Deferred()
        self._sync_waiters.append(waiter)
        return waiter

    def _index_loop(self) -> None:
        while True:
            batch = [self.changes.get()]
            try:
                while len(batch) < BATCH_LIMIT:
                    batch.append(self.changes.get_nowait())
            except queue.Empty:
                pass
            for part in _parts(batch):
                if part is _STOP:
                    return
                if callable(part):
                    self._run(part)
                else:
                    self._apply_batch(part)

    def _run(self, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:
            log.failure("{stanza}: a call on the index thread failed", stanza=self.link.name)

    def _apply_batch(self, batch: list) -> None:
        try:
            for change in batch:
                self._apply(change)
            self.snapshot = self.store.publish()
            if self.tap is not None:
                self.tap(batch)
        except Exception:
            log.failure("{stanza}: index update failed; the last good snapshot keeps serving", stanza=self.link.name)
            return
        if not self.synced and len(self.listed) == len(self.plan):
            self.synced = True
            self.synced_at = time.time()
            self._log_synced()
            self.reactor.callFromThread(self._fire_synced)

    def _apply(self, change: Listed | Changed | Deleted) -> None:
        kind = change.kind
        if isinstance(change, Listed):
            self.store.replace(kind, [obj for obj in change.objects if self._kept(kind, obj)], change.namespace)
            self.listed.add((kind, change.namespace))
        elif isinstance(change, Changed):
            if self._kept(kind, change.obj):
                self.store.put(kind, change.obj)
                if kind == Kind.ENDPOINT_SLICES and change.obj.triggered_at is not None:
                    self._record_programming(change.obj)
        else:
            self.store.delete(kind, (change.obj.namespace, change.obj.name))

    def listed_now(self) -> list[Listed]:
        """What the index holds of every scope listed so far, as the lists that would bring it (on its thread)."""
        return [self.store.listed(kind, namespace) for kind, namespace in sorted(self.listed, key=str)]

    def _record_programming(self, endpoint_slice) -> None:
        """CoreDNS's DNS programming latency: from the change that made the slice to now, per service kind."""
        service = self.store.services.get((endpoint_slice.namespace, endpoint_slice.service))
        if service is not None:
            kind = "headless_with_selector" if service.headless else "cluster_ip"
            self.programming.observe((kind,), max(0.0, time.time() - endpoint_slice.triggered_at))

    def _kept(self, kind: str, obj) -> bool:
        """Whether the stanza keeps C{obj}: with C{namespaces}, only objects in those namespaces."""
        namespaces = self.stanza.namespaces
        return kind == Kind.NAMESPACES or not namespaces or obj.namespace in namespaces

    def _log_synced(self) -> None:
        counts = self.snapshot.counts()
        kinds = dict.fromkeys(kind for kind, _, _ in self.plan)
        log.info("{stanza}: synced in {seconds:.2f}s: {objects}", stanza=self.link.name,
                 seconds=time.monotonic() - self.started_at,
                 objects=", ".join(f"{counts[KINDS[kind].counted_as]} {KINDS[kind].counted_as}" for kind in kinds))

    def _fire_synced(self) -> None:
        waiters, self._sync_waiters = self._sync_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def watch_statuses(self) -> list[WatchStatus]:
        """How each watch feeding this index is doing."""
        raise NotImplementedError

    def stale_since(self) -> float | None:
        """When the first of the watches that are down now went down (Unix time), or None."""
        down = [status.down_since for status in self.watch_statuses() if status.down_since is not None]
        return min(down) if down else None

    def status(self) -> dict:
        """What /ready and metrics tell about this stanza."""
        statuses = self.watch_statuses()
        events = [status.last_event for status in statuses if status.last_event is not None]
        return {
            "synced": self.synced,
            "api_server": self.url,
            "last_event": max(events) if events else None,
            "stale_since": self.stale_since(),
            "objects": self.snapshot.counts(),
            "watches": [
                {"kind": status.kind, "namespace": status.namespace, "up": status.up,
                 "last_error": status.last_error, "lists": status.lists, "restarts": status.restarts}
                for status in statuses
            ],
        }


def _parts(batch: list) -> list:
    """A batch split at the markers in it (L{_STOP}, callables): runs of changes, and each marker alone."""
    parts: list = []
    for item in batch:
        if item is _STOP or callable(item):
            parts.append(item)
        elif parts and isinstance(parts[-1], list):
            parts[-1].append(item)
        else:
            parts.append([item])
    return parts


class Cluster(Index):
    """One stanza's live, reduced copy of its cluster: its index, and the watches that feed it.

    C{link.name} is what the log calls the stanza: the zones and URL until the
    stanza names it (L{kubernetai.plugins.kubernetai.StanzaService}).
    """

    watching = True

    def __init__(self, stanza, api_client: client.ApiClient, url: str, reactor) -> None:
        plan = watch_plan(stanza)
        super().__init__(stanza, url, reactor, Link(f"{' '.join(stanza.zones)} ({url})", len(plan), self.probe))
        self.api_client = api_client
        self.limits = limits = Limits(
            TokenBucket(stanza.apiserver_qps or DEFAULT_QPS, stanza.apiserver_burst or DEFAULT_BURST),
            threading.BoundedSemaphore(stanza.apiserver_max_inflight) if stanza.apiserver_max_inflight else None,
        )
        self.watchers = [
            Watcher(kind, KINDS[kind].list_function(api_client, namespace), self.changes.put, limits, namespace,
                    selector, self.link)
            for kind, namespace, selector in plan
        ]

    def start(self) -> None:
        """Start the index thread, every watch thread and the link's probe."""
        super().start()
        threads = [
            threading.Thread(target=watcher.run, name=f"kubernetai-watch-{watcher.describe()}", daemon=True)
            for watcher in self.watchers
        ]
        self.threads += threads
        for thread in threads:
            thread.start()
        self.link.start()

    def stop(self) -> None:
        """Stop every thread; returns without waiting for threads blocked in I/O."""
        self.link.stop()
        for watcher in self.watchers:
            watcher.stop()
        super().stop()

    def probe(self) -> float | None:
        """Ask the API server's /readyz, counted as the watches' requests are: None if it answers 200,
        else the seconds its Retry-After asks for (0 without one)."""
        try:
            response = readyz(self.api_client, PROBE_TIMEOUT)
        except Exception:  # the watches' failures say why
            self.limits.requests.inc(("<error>", "GET"))
            return 0.0
        self.limits.requests.inc((str(response.status), "GET"))
        return None if response.status == 200 else retry_after_header(response.headers)

    def watch_statuses(self) -> list[WatchStatus]:
        return [watcher.status for watcher in self.watchers]
