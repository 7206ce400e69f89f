# -*- test-case-name: tests.test_cache,tests.test_cache_daemon -*-
"""
cache: answers repeated questions from memory, as CoreDNS's cache plugin does.

C{cache [TTL] [ZONES...] { success CAPACITY [TTL] [MINTTL]; denial CAPACITY
[TTL] [MINTTL]; prefetch AMOUNT [DURATION] [PERCENTAGE%]; serve_stale
[DURATION] [immediate [RESPONSE_TTL [RECHECK]] | verify [TIMEOUT
[RESPONSE_TTL [RECHECK]]]]; serve_stale_policy prefer_positive; servfail
DURATION; disable success|denial [ZONES...]; keepttl }}.

Answers are keyed by name (case folded), type, class and the query's DO and
CD bits.  Positive answers and denials (NXDOMAIN, NODATA, and SERVFAIL for
C{servfail}) live in two tables of 256 shards that evict at random when full.
Ours: a table is also full at 32 MiB (an answer too large for a shard's share
is not kept), and entries that can no longer be served (expired, and past
C{serve_stale}'s window) are dropped instead of waiting to be evicted, a
shard at a time as answers are stored (each within 30 s), so C{entries}
counts hardly any that cannot be served.
An entry lives for the smallest TTL of its records, clamped to the table's
[MINTTL, TTL]; it is served with every TTL counted down (the original with
C{keepttl}), and with the owner names that are the question in the asker's
case.  Popular entries are refreshed in the background before they expire
(C{prefetch}); expired ones may be served while a refresh runs
(C{serve_stale}).  Zone transfers and names outside ZONES pass through.

A stanza's denial given alike to a name never asked (L{kubernetai.alike})
does not reach the cache: it counts as the miss it would be, and is not
stored.

The handler counts what CoreDNS's C{coredns_cache_*} metrics export:
C{requests}, C{hits} and C{evictions} (by type), C{misses}, C{prefetches},
C{drops}, C{served_stale}, and C{entries} (by type).
"""

from __future__ import annotations

import math
import weakref
from typing import Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.names import dns
from zope.interface import implementer

from kubernetai import options
from kubernetai.cache.config import DENIAL, SUCCESS, CacheConfig, parse_cache
from kubernetai.cache.entries import Entry, Table
from kubernetai.cache.rules import (
    DELEGATION, META, NOERROR, OTHER_ERROR, answers_question, cache_type, cacheable, entry_duration, entry_key,
    records_at, response_type,
)
from kubernetai.chain import IHandler, PluginError, Request, Response, ServerConfig, then
from kubernetai.corefile import Directive
from kubernetai.metrics import NAMESPACE, block_server, counter, gauge, instances
from kubernetai.reuse import Countdown
from kubernetai.zones import all_or_none, in_zones

log = Logger(namespace="kubernetai.plugins.cache")


@implementer(IHandler)
class Cache:
    """Serves answers it holds, and keeps what the rest of the chain answers."""

    name = "cache"
    next = None
    # CoreDNS counts replies whose question differs from the query's; a
    # Response here carries no question, so there is never one to drop.
    drops = 0

    def __init__(self, config: CacheConfig, clock) -> None:
        self.config = config
        self.clock = clock
        self.success = Table(config.success.capacity)
        self.denial = Table(config.denial.capacity)
        self.requests = self.misses = self.prefetches = self.served_stale = 0
        self.hits = {SUCCESS: 0, DENIAL: 0}
        self.evictions = {SUCCESS: 0, DENIAL: 0}

    @property
    def entries(self) -> dict[str, int]:
        """Entries held, by table."""
        return {SUCCESS: len(self.success), DENIAL: len(self.denial)}

    def serve(self, request: Request):
        """The cached answer to C{request}, else the rest of the chain's, kept on its way back."""
        if request.qtype in (dns.AXFR, dns.IXFR) or not in_zones(request.name, self.config.zones):
            return self.next.serve(request)
        now = self.clock.seconds()
        key = entry_key(request)
        entry = self._lookup(key, now)
        if entry is None:
            request.observe_reply(self._miss_observer)
            return then(self.next.serve(request), lambda response: self._store(request, key, response)[0])
        ttl = entry.ttl(now)
        if ttl > 0:
            if self._should_prefetch(entry, now):
                self._prefetch(request, key, entry, now, stale=False)
            served = entry.response(request.qname, self._served_ttl(entry, now, stale=False))
            served.valid_while, served.countdown = self._reusable(key, entry)
            if served.valid_while is not None:
                request.observe_reply(self._hit_replay(entry is self.denial.get(key), served.countdown))
            return served
        recheck = self.config.stale_recheck
        if self.config.verify_stale and (recheck == 0 or entry.begin_refresh(now, recheck)):
            return self._verify(request, key, entry, now + ttl)
        return self._serve_stale(request, key, entry, now + ttl)

    def passes_alike(self, zone: str) -> bool:
        """The names of C{zone} are all looked up here, or none is; a denial given alike to a name never
        asked (L{kubernetai.alike}) counts as the miss it would be, and is not stored."""
        return all_or_none(zone, self.config.zones)

    def _miss_observer(self, request: Request, response: Response, reply: bytes):
        return self._count_miss

    def _count_miss(self, client_host: str, seconds: float, grown: int = 0) -> None:
        self.requests += 1
        self.misses += 1

    def _reusable(self, key, entry: Entry) -> tuple[Callable[[], bool] | None, Countdown | None]:
        """How long a repeated query would get the same answer from C{entry}: (valid_while, countdown).

        With keepttl, the very bytes until it expires; else its TTLs count down. Never with
        prefetch: every repeated query must be counted for it.
        """
        if self.config.prefetch > 0:
            return None, None
        if self.config.keepttl:
            clock, expiry = self.clock, entry.stored + entry.orig_ttl
            return (lambda: clock.seconds() < expiry), None
        countdown = Countdown(self.clock, entry.stored, entry.orig_ttl, self._renewal(key, entry))
        return countdown.holds, countdown

    def _renewal(self, key, entry: Entry) -> Callable[[float], bool] | None:
        """What asking for C{entry} again at its expiry does when the rest of the chain would answer the
        same: a miss whose answer is stored anew, unchanged, at that moment (as the chain would store it);
        None where that is not so simple (serve_stale, or no source that says it is unchanged)."""
        if entry.source_holds is None or self.config.stale_up_to > 0:
            return None
        denial = self.denial.get(key) is entry
        if denial and entry.rcode == dns.ESERVER:
            return None
        # A reply kept to send again holds this check: it must not keep an evicted entry alive.
        held_entry = weakref.ref(entry)

        def renew(now: float) -> bool:
            entry = held_entry()
            if entry is None:
                return False
            negative = self.denial.get(key)
            held = negative is entry if denial else negative is None and self.success.get(key) is entry
            if not held or not entry.source_holds():
                return False
            entry.stored = now
            return True

        return renew

    def _hit_replay(self, denial: bool, countdown: Countdown | None):
        """The reply observer that counts a hit again each time the server resends the reply (a miss
        when the server renewed it)."""
        kind = DENIAL if denial else SUCCESS

        def count_hit(client_host: str, seconds: float, grown: int = 0) -> None:
            self.requests += 1
            if countdown is not None and countdown.renewed:
                countdown.renewed = False
                self.misses += 1
            else:
                self.hits[kind] += 1

        return lambda request, response, reply: count_hit

    def _lookup(self, key, now: float) -> Entry | None:
        """CoreDNS's C{getIfNotStale}: denials first, but never a SERVFAIL over a live positive answer."""
        self.requests += 1
        up_to = int(self.config.stale_up_to)

        def live(entry: Entry | None) -> bool:
            return entry is not None and (entry.ttl(now) > 0 or (up_to > 0 and -entry.ttl(now) < up_to))

        positive = self.success.get(key)
        if self.config.prefer_positive and self.config.stale_up_to > 0 and positive is not None:
            answering = positive.answering_entry()
            if live(answering):
                self.hits[SUCCESS] += 1
                return answering
        negative = self.denial.get(key)
        if live(negative) and not (negative.rcode == dns.ESERVER and live(positive)):
            self.hits[DENIAL] += 1
            return negative
        if live(positive):
            self.hits[SUCCESS] += 1
            return positive
        self.misses += 1
        return None

    def _served_ttl(self, entry: Entry, now: float, stale: bool) -> int:
        if stale and self.config.stale_ttl > 0:
            return self.config.stale_ttl
        if self.config.keepttl:
            return entry.orig_ttl
        return 0 if stale else entry.ttl(now)

    def _store(self, request: Request, key, response: Response, background: bool = False):
        """CoreDNS's C{WriteMsg}: cap the reply's TTLs and keep it if it may be kept; (reply, entry)."""
        now = self.clock.seconds()
        kind = cache_type(request, response, now)
        duration = entry_duration(kind, response, self.config)
        ttl = int(duration)
        reply = response.but(
            answers=records_at(response.answers, ttl),
            authority=records_at(response.authority, ttl),
            additional=records_at(response.additional, ttl),
            valid_while=None,
        )
        entry = None
        stale_up_to = int(self.config.stale_up_to)
        self.success.drop_useless(now, stale_up_to)
        self.denial.drop_useless(now, stale_up_to)
        answering = answers_question(request, response)
        if duration > 0 and cacheable(kind, request, response, answering):
            entry = self._keep(request, key, kind, Entry(
                response.rcode,
                (tuple(response.answers), tuple(response.authority), tuple(response.additional)),
                response.recursion_available, now, ttl, answering,
                source_holds=response.valid_while,
            ), background)
        return reply, entry

    def _keep(self, request: Request, key, kind: str, entry: Entry, background: bool):
        """Put C{entry} in its table unless C{disable}d there; the entry kept, or None."""
        if kind in (NOERROR, DELEGATION):
            if in_zones(request.name, self.config.success_disabled):
                return None
            previous = self.success.get(key)
            if self.config.prefer_positive and not entry.answering and previous is not None:
                entry.last_known_good = previous.answering_entry()
            self.evictions[SUCCESS] += self.success.add(key, entry)
            if entry.answering if self.config.prefer_positive else background:
                self.denial.remove(key)
            return entry
        if in_zones(request.name, self.config.denial_disabled):
            return None
        self.evictions[DENIAL] += self.denial.add(key, entry)
        return entry

    def _should_prefetch(self, entry: Entry, now: float) -> bool:
        if self.config.prefetch <= 0:
            return False
        entry.count_hit(self.config.prefetch_window, now)
        threshold = math.ceil(self.config.prefetch_percentage / 100 * entry.orig_ttl)
        return entry.hits >= self.config.prefetch and entry.ttl(now) <= threshold

    def _prefetch(self, request: Request, key, entry: Entry, now: float, stale: bool) -> None:
        """Refresh C{entry} in the background, one refresh at a time, with a copy of the query over TCP."""
        recheck = self.config.stale_recheck if stale else 0.0
        if not entry.begin_refresh(self.clock.seconds(), recheck):
            return
        self.prefetches += 1
        copy = refresh_request(request)

        def answered(response: Response) -> bool:
            if stale:
                return self._verify_refresh(copy, key, response, background=True)[0]
            self._store(copy, key, response, background=True)
            return True

        def done(refreshed: bool) -> None:
            renewed = self.denial.get(key) or self.success.get(key)
            if refreshed and renewed is not None:
                renewed.hits, renewed.last_hit = entry.hits, now
            entry.end_refresh(self.clock.seconds(), recheck, refreshed)

        refreshing = defer.maybeDeferred(self.next.serve, copy)
        # CoreDNS counts a failed prefetch of a live entry as done; a failed stale refresh is not.
        refreshing.addCallbacks(answered, _refresh_failed, errbackArgs=(not stale,))
        refreshing.addCallback(done).addErrback(lambda failure: log.failure("cache refresh failed", failure))

    def _verify_refresh(self, request: Request, key, response: Response, background: bool):
        """Whether C{response} may replace a stale entry (and keep it if so); (refreshed, reply, entry)."""
        if response.truncated:
            return False, None, None
        if self.config.prefer_positive:
            usable = cache_type(request, response, self.clock.seconds()) == NOERROR
            if usable and answers_question(request, response):
                return (True, *self._store(request, key, response, background))
            self._store(request, key, response, background=True)
            return False, None, None
        kind = response_type(request.qtype, response, request.dnssec_ok, self.clock.seconds())
        if kind in (OTHER_ERROR, META) or response.rcode not in (dns.OK, dns.ENAME):
            return False, None, None
        return (True, *self._store(request, key, response, background))

    def _verify(self, request: Request, key, entry: Entry, stale_now: float):
        """serve_stale verify: ask first, and serve the expired entry only if that fails (or times out)."""
        recheck, timeout = self.config.stale_recheck, self.config.verify_timeout
        refreshing = defer.maybeDeferred(self.next.serve, request)
        refreshing.addCallbacks(
            lambda response: self._verify_refresh(request, key, response, background=timeout > 0),
            _refresh_failed,
            errbackArgs=((False, None, None),),
        )

        def settled(outcome):
            if recheck > 0:
                entry.end_refresh(self.clock.seconds(), recheck, outcome[0])
            return outcome

        refreshing.addCallback(settled)
        if timeout == 0:
            return refreshing.addCallback(
                lambda outcome: outcome[1] if outcome[0] else self._serve_stale(request, key, entry, stale_now)
            )
        served = defer.Deferred()
        timer = self.clock.callLater(
            timeout, lambda: served.callback(self._serve_stale(request, key, entry, stale_now))
        )

        def in_time(outcome) -> None:
            if not timer.active():
                return
            timer.cancel()
            refreshed, reply, renewed = outcome
            if refreshed and renewed is not None:
                reply = renewed.response(request.qname, self._served_ttl(renewed, self.clock.seconds(), stale=False))
            served.callback(reply if refreshed else self._serve_stale(request, key, entry, stale_now))

        refreshing.addCallback(in_time).addErrback(lambda failure: log.failure("cache verify failed", failure))
        return served

    def _serve_stale(self, request: Request, key, entry: Entry, stale_now: float) -> Response:
        """An expired entry, with TTL 0 (or the response TTL), refreshing it behind in C{immediate} mode."""
        if not self.config.verify_stale:
            self._prefetch(request, key, entry, stale_now, stale=True)
        self.served_stale += 1
        return entry.response(request.qname, self._served_ttl(entry, stale_now, stale=True))


def refresh_request(request: Request) -> Request:
    """A copy of C{request} for a background refresh, asked over TCP as CoreDNS's prefetch does."""
    message = dns.Message()
    message.fromStr(request.packet)
    copy = Request(request.packet, message, request.client, "tcp", request.edns, request.dnssec_ok,
                   request.payload_size)
    copy.zone, copy.local, copy.resolver, copy.depth = request.zone, request.local, request.resolver, request.depth
    return copy


def _refresh_failed(failure, outcome):
    """C{outcome} for a refresh that failed; plugin errors (an upstream timing out) are expected and quiet."""
    if not failure.check(PluginError):
        log.failure("cache refresh failed", failure)
    return outcome


def setup(directives: list[Directive], config: ServerConfig) -> Cache:
    """C{cache [TTL] [ZONES...] { options }}, once per server block."""
    directive = options.only_once(directives)
    cache = parse_cache(directive, [address.zone for address in config.zones])
    config.plan.append(
        f"cache {' '.join(cache.zones)} (success {cache.success.capacity} up to {cache.success.max_ttl}s, "
        f"denial {cache.denial.capacity} up to {cache.denial.max_ttl}s)"
    )
    handler = Cache(cache, config.reactor)
    handler.server = block_server(config)
    instances(config, "cache", cache_families).append(handler)
    return handler


def cache_families(caches: list[Cache]):
    """The cache's metrics, as CoreDNS names them."""
    labels = ("server", "zones", "view")
    typed = ("server", "type", "zones", "view")

    def each(value):
        return [((c.server, " ".join(c.config.zones), ""), value(c)) for c in caches]

    def each_type(value):
        return [((c.server, kind, " ".join(c.config.zones), ""), value(c, kind)) for c in caches for kind in (SUCCESS, DENIAL)]

    yield gauge(f"{NAMESPACE}_cache_entries", "The number of elements in the cache.", typed, each_type(lambda c, k: c.entries[k]))
    yield counter(f"{NAMESPACE}_cache_requests_total", "The count of cache requests.", labels, each(lambda c: c.requests))
    yield counter(f"{NAMESPACE}_cache_hits_total", "The count of cache hits.", typed, each_type(lambda c, k: c.hits[k]))
    yield counter(f"{NAMESPACE}_cache_misses_total", "The count of cache misses.", labels, each(lambda c: c.misses))
    yield counter(f"{NAMESPACE}_cache_prefetch_total", "The number of times the cache has prefetched a cached item.",
                  labels, each(lambda c: c.prefetches))
    yield counter(f"{NAMESPACE}_cache_drops_total", "The number responses that are not cached, because the reply is malformed.",
                  labels, each(lambda c: c.drops))
    yield counter(f"{NAMESPACE}_cache_served_stale_total", "The number of requests served from stale cache entries.",
                  labels, each(lambda c: c.served_stale))
    yield counter(f"{NAMESPACE}_cache_evictions_total", "The count of cache evictions.", typed,
                  each_type(lambda c, k: c.evictions[k]))


