# -*- test-case-name: tests.test_answer,tests.test_cache_daemon,tests.test_prometheus -*-
"""
Replies sent again without running the chain: the rules every plugin keeps,
and the table of kept replies each listening address has.

A query asked again, byte for byte but its ID, over UDP, may be answered
from the bytes of the reply it got before, without decoding it or running
any plugin.  Whether that is right is each plugin's to say, on the
L{Response} it returns:

 1. C{Response.valid_while} is a check without arguments, cheap and without
    side effects, that returns True while the same query would get the very
    same reply.  None (the default) means: build it anew every time.  The
    check must not hold on to what it was made from (a snapshot, a table):
    compare a generation number or an identity instead, or memory grows
    with every change (issue 20).  L{always} is the check of an answer that
    depends on nothing but the query.
 2. A plugin that hands a query on and changes what comes back keeps its
    reuse honest: unchanged if its change is the same for every client and
    every time; L{also_valid_while} adds a check of its own (the hosts file
    it read is still the one loaded); L{not_reusable} when the change
    depends on the client, the clock or chance (autopath, acl by network,
    loadbalance's shuffle).  L{all_valid} combines checks; any None makes
    None (a C{merge} group's reply: the checks of every member it asked).
 3. A plugin that must see every reply (log, prometheus, cache hits) calls
    C{request.observe_reply(observer)}.  The observer runs once the reply is
    written, with (request, response, reply bytes), and returns a
    C{replay(client_host, seconds)} that is called for each time the reply
    is sent again; an observer that returns None stops the reply from being
    kept, so the chain runs for every such query.
 4. A reply whose TTLs count down (a cache hit) carries a L{Countdown} in
    C{Response.countdown}: the table rewrites its TTLs in place as they tick
    and keeps it until they reach zero, where the cache may renew it.
 5. Only UDP replies are kept (TCP and zone transfers always run the
    chain).  L{KeptReplies} keeps them in two generations bounded by count,
    bytes and age, so names no longer asked are dropped.
 6. A denial may also answer other names, never asked before: see
    L{kubernetai.alike} (C{Response.alike}, C{passes_alike}).  A replay is
    called as C{replay(client_host, seconds, grown)} there, C{grown} the
    octets its query and reply are longer than those it saw.

Writing either C{then(result, f)} from L{kubernetai.chain} or these helpers
keeps a plugin correct whether the rest of the chain answered at once (a
Response) or later (a Deferred firing with one).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from kubernetai.chain import then
from kubernetai.message import record_ttl_offsets, with_ttl

if TYPE_CHECKING:
    from kubernetai.chain import Response

def always() -> bool:
    """The C{valid_while} of a reply that depends on nothing but its query: always the same."""
    return True


def all_valid(*checks: Callable[[], bool] | None) -> Callable[[], bool] | None:
    """A check that holds while every one of C{checks} does; None when any is None (not reusable)."""
    if any(check is None for check in checks):
        return None
    if len(checks) == 1:
        return checks[0]
    return lambda: all(check() for check in checks)


def also_valid_while(result, check: Callable[[], bool] | None):
    """C{result} (a Response or a Deferred of one) made reusable only while C{check} holds too."""

    def combined(response: Response) -> Response:
        response.valid_while = all_valid(check, response.valid_while)
        return response

    return then(result, combined)


def not_reusable(result):
    """C{result} (a Response or a Deferred of one) marked as not to be sent again by the server."""
    return also_valid_while(result, None)


class Countdown:
    """
    The TTLs of a reply that all read C{ttl} at C{stored} and lose a second every
    whole second after (a cached answer).  Its C{holds} is the reply's
    C{valid_while}: until the TTLs next tick, unless the server, which then
    rewrites the TTLs in the bytes it keeps at every tick, calls C{follow}:
    then until they reach zero.  There, C{renew(now)} (when given) may start
    them again from C{now}: the cache's answer to a question asked again at
    expiry when its source would answer the same, with C{renewed} set until
    the cache has counted that query.
    """

    __slots__ = ("clock", "stored", "ttl", "until", "renew", "renewed")

    def __init__(self, clock, stored: float, ttl: int, renew: Callable[[float], bool] | None = None) -> None:
        self.clock = clock
        self.stored = stored
        self.ttl = ttl
        self.until = self.next_tick(clock.seconds())
        self.renew = renew
        self.renewed = False

    def ttl_at(self, now: float) -> int:
        return self.ttl - int(now - self.stored)

    def next_tick(self, now: float) -> float:
        """When the TTLs read at C{now} next lose a second."""
        return self.stored + int(now - self.stored) + 1

    def holds(self) -> bool:
        return self.clock.seconds() < self.until

    def follow(self) -> None:
        """The server rewrites the TTLs as they tick: the reply holds until they reach zero."""
        self.until = self.stored + self.ttl

    def try_renew(self) -> bool:
        """Once followed to zero, whether C{renew} starts the TTLs again from now."""
        now = self.clock.seconds()
        if self.renew is None or now < self.until or self.until != self.stored + self.ttl or not self.renew(now):
            return False
        self.stored, self.until, self.renewed = now, now + self.ttl, True
        return True


# What the replies kept to send again may hold, both generations together (see L{KeptReplies}): a
# reply is counted as its bytes, its query's, and READY_REPLY_OVERHEAD for the objects around them
# (the entry, its checks and observers' replays: about 1.5 KB with prometheus and cache, as
# tracemalloc counts them in a running daemon).  Hot replies stay however many others come and
# go; one not asked again within one to two READY_REPLIES_SECONDS is dropped at the next reply
# kept after that.
READY_REPLIES_LIMIT = 50000
READY_REPLIES_BYTES = 32 * 2**20
READY_REPLIES_SECONDS = 30.0
READY_REPLY_OVERHEAD = 2048
# Replies of a dropped generation freed at each reply kept after: freeing 25,000 at once held the
# reactor 37 ms (1.5 us each); 500 take under a millisecond, and a generation is gone within 50 replies.
DROP_SLICE = 500


class ReadyReply:
    """A reply kept to send again: its bytes less the ID, the check that says they still hold, the
    observers' replays, where its TTLs are rewritten as they tick (None if they do not), and the
    bytes it is counted as."""

    __slots__ = ("reply", "valid_while", "replays", "ticking", "size")

    def __init__(self, reply: bytes, valid_while, replays: tuple, ticking: TickingTTLs | None, size: int) -> None:
        self.reply = reply
        self.valid_while = valid_while
        self.replays = replays
        self.ticking = ticking
        self.size = size


class TickingTTLs:
    """Where the TTLs of a kept reply (less its ID) sit, and when they must next be rewritten."""

    __slots__ = ("countdown", "offsets", "next_tick")

    def __init__(self, countdown: Countdown, offsets: list[int]) -> None:
        self.countdown = countdown
        self.offsets = offsets
        self.next_tick = countdown.until

    def current(self, reply: bytes) -> bytes:
        """C{reply} with the TTLs the countdown reads now."""
        now = self.countdown.clock.seconds()
        if now < self.next_tick:
            return reply
        self.next_tick = self.countdown.next_tick(now)
        return with_ttl(reply, self.offsets, self.countdown.ttl_at(now))


@dataclass
class KeptReplies:
    """
    The UDP replies ready to send again: by query bytes less the ID, with
    the check that says they still hold (rule 1).

    Kept replies live in two generations: new ones go into C{ready_replies};
    once it holds half of C{ready_limit} replies or of C{ready_bytes_limit}
    bytes, or is C{ready_seconds} old, it becomes C{older_replies} and the
    generation before is dropped, C{drop_slice} replies at a time as later
    replies are kept.  A reply asked for from the older generation moves back
    into the current one, so the replies still asked for stay and the others
    go, within both bounds.
    """

    ready_replies: dict[bytes, ReadyReply] = field(default_factory=dict)
    older_replies: dict[bytes, ReadyReply] = field(default_factory=dict)
    ready_limit: int = READY_REPLIES_LIMIT
    ready_bytes_limit: int = READY_REPLIES_BYTES
    ready_seconds: float = READY_REPLIES_SECONDS
    clock: Callable[[], float] = time.monotonic
    drop_slice: int = DROP_SLICE
    ready_bytes: int = 0
    generation_ends: float = -math.inf
    dropped: list[dict[bytes, ReadyReply]] = field(default_factory=list)

    def ready_reply(self, packet: bytes) -> tuple[bytes, tuple] | None:
        """The reply to C{packet} and its observers' replays, if the same query was answered before
        and that reply still holds."""
        ready = self.ready_replies.get(packet[2:])
        if ready is None:
            ready = self.older_replies.pop(packet[2:], None)
            if ready is None:
                return None
            self._admit(packet[2:], ready)
        ticking = ready.ticking
        if not ready.valid_while():
            if ticking is None or not ticking.countdown.try_renew() or not ready.valid_while():
                return None
        if ticking is not None:
            ready.reply = ticking.current(ready.reply)
        return packet[:2] + ready.reply, ready.replays

    def keep_reply(self, packet: bytes, reply: bytes, response: Response, replays: tuple) -> None:
        """Keep C{reply} to send again while C{response} holds; one whose TTLs count down is kept
        until they reach zero, its TTLs rewritten as they tick."""
        ticking = None
        if response.countdown is not None:
            ticking = TickingTTLs(response.countdown, [offset - 2 for offset in record_ttl_offsets(reply)])
            response.countdown.follow()
        key = packet[2:]
        self.older_replies.pop(key, None)
        self._admit(key, ReadyReply(reply[2:], response.valid_while, replays, ticking,
                                    len(key) + len(reply) + READY_REPLY_OVERHEAD))

    def _admit(self, key: bytes, ready: ReadyReply) -> None:
        """Put C{ready} in the current generation, starting a new one first if this one is full or old."""
        previous = self.ready_replies.pop(key, None)
        if previous is not None:
            self.ready_bytes -= previous.size
        now = self.clock()
        if (2 * (len(self.ready_replies) + 1) > self.ready_limit
                or 2 * (self.ready_bytes + ready.size) > self.ready_bytes_limit or now >= self.generation_ends):
            self.dropped.append(self.older_replies)
            self.older_replies, self.ready_replies, self.ready_bytes = self.ready_replies, {}, 0
            self.generation_ends = now + self.ready_seconds
        self.ready_replies[key] = ready
        self.ready_bytes += ready.size
        self._free_dropped()

    def _free_dropped(self) -> None:
        """Free up to C{drop_slice} replies of the generations dropped."""
        left = self.drop_slice
        while self.dropped and left:
            generation = self.dropped[0]
            count = min(left, len(generation))
            for _ in range(count):
                generation.popitem()
            left -= count
            if not generation:
                del self.dropped[0]

    def kept_replies(self) -> int:
        """How many replies are kept, in both generations."""
        return len(self.ready_replies) + len(self.older_replies)

    def forget_replies(self) -> None:
        """Drop every kept reply (the chains that made them are gone)."""
        self.dropped += [self.ready_replies, self.older_replies]
        self.ready_replies, self.older_replies, self.ready_bytes = {}, {}, 0
