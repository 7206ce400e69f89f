# -*- test-case-name: tests.test_kubernetes_watch -*-
"""
List and watch one kind of object through the official kubernetes client,
as raw JSON, on a thread of its own.

The loop is ours, not C{kubernetes.watch.Watch}'s (which loses track of the
resourceVersion with raw dicts): list, hand the reduced objects to the
index, watch from the list's resourceVersion with bookmarks, resume from
the last resourceVersion seen when the stream ends or drops, re-list on
410 Gone, and back off (capped, with jitter, longer if the server's
Retry-After says so) on every error.  The stanza's L{Link} hears of every
failure (with its real cause) and every connection: it logs them per stanza
and cuts the backoff short once the API server is back.
Nothing here runs on the reactor thread.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from kubernetes.client.exceptions import ApiException
from twisted.logger import Logger
from urllib3.exceptions import ReadTimeoutError

from kubernetai.kubernetes.kinds import KINDS, Changed, Deleted, Kind, Listed
from kubernetai.kubernetes.link import Link
from kubernetai.metrics import DEFAULT_BUCKETS, Counts, Histograms

log = Logger(namespace="kubernetai.kubernetes.watch")

# Objects per list page.  Pages of EndpointSlices are smaller: 500 slices of 100
# endpoints, parsed at once, leave the interpreter's memory fragmented for good.
LIST_TIMEOUT = (10.0, 60.0)


class Expired(Exception):
    """The resourceVersion we resume from is gone (410): list again."""


class WatchError(Exception):
    """The API server sent an ERROR event other than 410."""


@dataclass
class WatchStatus:
    """How one watch is doing; written by its thread, read by anyone for reporting."""

    kind: str
    namespace: str | None
    listed: bool = False
    up: bool = False
    last_event: float | None = None
    down_since: float | None = None
    last_error: str | None = None
    lists: int = 0
    restarts: int = 0


@dataclass
class Backoff:
    """Capped exponential backoff with jitter: half the delay fixed, half random.

    The cap bounds how long a stanza stays stale once its API server is back."""

    initial: float = 0.5
    cap: float = 10.0
    failures: int = 0
    random: Callable[[], float] = field(default=random.random, repr=False)

    def next_delay(self) -> float:
        delay = min(self.cap, self.initial * 2**self.failures)
        self.failures += 1
        return delay / 2 + self.random() * delay / 2

    def reset(self) -> None:
        self.failures = 0


class TokenBucket:
    """Rate limit for API calls: C{qps} a second on average, bursts of C{burst}; qps 0 is unlimited."""

    def __init__(self, qps: float, burst: int, clock=time.monotonic, sleep=time.sleep) -> None:
        self.qps = qps
        self.capacity = max(1, burst)
        self.tokens = float(self.capacity)
        self.clock = clock
        self.sleep = sleep
        self.updated = clock()
        self.lock = threading.Lock()

    def take(self) -> float:
        """Wait until a call may be made, and count it; the seconds waited."""
        if self.qps <= 0:
            return 0.0
        with self.lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.qps)
            self.updated = now
            self.tokens -= 1
            wait = -self.tokens / self.qps if self.tokens < 0 else 0.0
        if wait > 0:
            self.sleep(wait)
        return max(wait, 0.0)


@dataclass
class Limits:
    """What a stanza allows its watches against the API server, and how its requests went."""

    bucket: TokenBucket
    inflight: threading.BoundedSemaphore | None = None
    watch_timeout: float = 300.0
    read_timeout: float = 90.0
    requests: Counts = field(default_factory=lambda: Counts("", "", ("code", "method"), shared=True))
    latency: Histograms = field(default_factory=lambda: Histograms("", "", ("verb",), DEFAULT_BUCKETS, shared=True))
    rate_limited: Histograms = field(default_factory=lambda: Histograms("", "", ("verb",), DEFAULT_BUCKETS, shared=True))


class Watcher:
    """
    Keeps one kind (in one namespace, or all) in step with the API server,
    sending L{Listed}, L{Changed} and L{Deleted} to C{sink}, and telling
    C{link} (the stanza's) how it fares.
    """

    def __init__(self, kind: Kind, list_function, sink: Callable[[Listed | Changed | Deleted], None],
                 limits: Limits, namespace: str | None = None, label_selector: str | None = None,
                 link: Link | None = None) -> None:
        self.kind = kind
        self.page_size = KINDS[kind].page_size
        self.list_function = list_function
        self.reduce = KINDS[kind].reduce
        self.sink = sink
        self.limits = limits
        self.namespace = namespace
        self.label_selector = label_selector
        self.status = WatchStatus(kind, namespace)
        self.link = link or Link(self.describe())
        # The link's wake-ups this watch has seen: at each attempt, and each time it connects.
        self.woken = 0
        self.backoff = Backoff()
        self.up_since = 0.0
        self.stopping = threading.Event()
        self.response = None

    def describe(self) -> str:
        return f"{self.kind} in {self.namespace}" if self.namespace else self.kind

    def run(self) -> None:
        """List and watch until stopped; the body of the watch thread."""
        version = None
        while not self.stopping.is_set():
            self.woken = self.link.wakes
            try:
                if version is None:
                    version = self.list_all()
                version = self.watch_from(version)
                self.backoff.reset()
            except Expired:
                log.info("{stanza}: {what}: resourceVersion {version} expired, listing again",
                         stanza=self.link.name, what=self.describe(), version=version)
                version = None
            except Exception as err:
                if self.stopping.is_set():
                    return
                self.link.wait(*self.delays_after(err), self.woken, self.stopping)

    def stop(self) -> None:
        """Ask the thread to end; an open watch is closed under it."""
        self.stopping.set()
        self.link.interrupt()
        response = self.response
        if response is not None:
            try:
                response.shutdown()
            except Exception:
                pass

    def delays_after(self, err: Exception) -> tuple[float, float]:
        """Mark the watch down; the seconds to wait before trying again, and the least of them
        if the API server is back sooner.

        The backoff starts afresh after a watch that stayed up longer than its cap (so a drop
        now and then is retried at once, but a server that drops every watch is not hammered);
        a Retry-After from the server, up to the cap, is waited out in any case.
        """
        if self.status.up and time.monotonic() - self.up_since > self.backoff.cap:
            self.backoff.reset()
        self.mark_down(err)
        asked = min(retry_after(err), self.backoff.cap)
        return max(self.backoff.next_delay(), asked), asked

    def mark_down(self, err: Exception) -> None:
        status = self.status
        if status.down_since is None:
            status.down_since = time.time()
        status.up = False
        status.restarts += 1
        status.last_error = describe_error(err)
        self.link.failed(self.describe(), status.last_error)

    def call(self, **arguments):
        """Call the list function for our namespace and selector, raw; rate limited but for next pages.

        Counted as CoreDNS counts its REST client's requests: by status code, by verb and time taken.
        """
        if self.namespace is not None:
            arguments["namespace"] = self.namespace
        if self.label_selector:
            arguments["label_selector"] = self.label_selector
        verb = "WATCH" if arguments.get("watch") else "LIST"
        if "_continue" not in arguments:
            self.limits.rate_limited.observe((verb,), self.limits.bucket.take())
        started = time.monotonic()
        try:
            response = self.list_function(_preload_content=False, **arguments)
        except ApiException as err:
            self.limits.requests.inc((str(err.status or "<error>"), "GET"))
            raise
        except Exception:
            self.limits.requests.inc(("<error>", "GET"))
            raise
        self.limits.requests.inc((str(response.status), "GET"))
        if verb == "LIST":
            self.limits.latency.observe((verb,), time.monotonic() - started)
        return response

    def list_all(self) -> str:
        """List every page, hand the objects over as the whole of our scope; the list's resourceVersion."""
        objects = []
        continue_token = None
        inflight = self.limits.inflight
        while True:
            if inflight is not None:
                inflight.acquire()
            try:
                arguments = {"limit": self.page_size, "_request_timeout": LIST_TIMEOUT}
                if continue_token:
                    arguments["_continue"] = continue_token
                page = json.loads(self.call(**arguments).data)
            finally:
                if inflight is not None:
                    inflight.release()
            items = [item for item in page.get("items") or () if isinstance(item, dict)]
            objects += [each for each in map(self.reduce, items) if each is not None]
            metadata = page.get("metadata") or {}
            continue_token = metadata.get("continue")
            if not continue_token:
                break
        self.sink(Listed(self.kind, self.namespace, objects))
        self.status.listed = True
        self.status.lists += 1
        self.mark_up()
        return metadata.get("resourceVersion") or "0"

    def mark_up(self) -> None:
        status = self.status
        self.up_since = time.monotonic()
        status.up = True
        status.down_since = None
        status.last_event = time.time()
        self.link.connected(self.describe())
        self.woken = self.link.wakes

    def watch_from(self, version: str) -> str:
        """Follow the watch stream until it ends; the last resourceVersion seen."""
        timeout = int(self.limits.watch_timeout * (1 + random.random()))
        self.response = response = self.call(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout,
            _request_timeout=(LIST_TIMEOUT[0], self.limits.read_timeout),
        )
        try:
            self.mark_up()
            for line in stream_lines(response):
                version = self.handle_event(decode_event(line), version)
        except ReadTimeoutError:
            # kube-apiserver sends a quiet watch nothing, not even a bookmark, for minutes (v1.35: none
            # in 150 s): a stream silent for read_timeout is no failure.  The next watch, from the same
            # resourceVersion, tells whether the server is still there.
            pass
        finally:
            self.response = None
            response.release_conn()
        return version

    def handle_event(self, event: dict, version: str) -> str:
        """Pass one watch event on; the resourceVersion to resume from after it."""
        event_type = event.get("type")
        obj = event.get("object") or {}
        if event_type == "ERROR":
            if obj.get("code") == 410:
                raise Expired(obj.get("message"))
            raise WatchError(f"watch error {obj.get('code')}: {obj.get('message')}")
        self.status.last_event = time.time()
        change = {"ADDED": Changed, "MODIFIED": Changed, "DELETED": Deleted}.get(event_type)
        reduced = self.reduce(obj) if change else None
        if reduced is not None:
            self.sink(change(self.kind, reduced))
        metadata = obj.get("metadata")
        resumed = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
        return resumed if isinstance(resumed, str) and resumed else version


def stream_lines(response):
    """The newline-delimited lines of a chunked watch response, as they arrive."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=False):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def retry_after(err: Exception) -> float:
    """The seconds an API error's Retry-After header asks for (delta-seconds form), or 0."""
    return retry_after_header(err.headers if isinstance(err, ApiException) else None)


def retry_after_header(headers) -> float:
    """The seconds a response's Retry-After header asks for (delta-seconds form), or 0."""
    try:
        return max(0.0, float((headers or {}).get("Retry-After", 0)))
    except ValueError:
        return 0.0


def decode_event(line: bytes) -> dict:
    """One line of a watch stream as the event it must be: a JSON object with a type and maybe an object.

    Anything else is a L{WatchError}: the watch starts again from the last resourceVersion it saw.
    """
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):
        event = None
    if not (isinstance(event, dict) and isinstance(event.get("type"), str)
            and isinstance(event.get("object", {}), (dict, type(None)))):
        raise WatchError(f"not a watch event: {line[:200]!r}")
    return event


def describe_error(err: Exception) -> str:
    """An error as an operator wants to read it, on one line: the HTTP status and reason, or the network cause."""
    if isinstance(err, ApiException) and err.status:
        return f"API server answered {err.status} {err.reason}".strip()
    if isinstance(err, ApiException):  # the client's wrapping of a TLS failure: "SSLError\n[SSL: ...] ..."
        return ": ".join(line.strip() for line in str(err.reason).splitlines())
    return f"{type(err).__name__}: {err}"
