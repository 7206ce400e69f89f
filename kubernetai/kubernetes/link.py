# -*- test-case-name: tests.test_kubernetes_link -*-
"""
A stanza's link to its API server, as all its watches find it: what the log
says about it, and when the watches try again.

Each watch backs off on its own (L{kubernetai.kubernetes.watch.Backoff}).  The
link adds up what the stanza's watches find:

- The log says once that the API server fails the stanza (at the first
  failure, with its cause), reminds at most once a minute while a watch
  still fails, and says once that every watch is back: not a line per watch
  and retry.
- When the API server is back after none of the stanza's watches was up
  (one of them connects, or its C{/readyz}, asked every second meanwhile,
  answers 200), every watch waiting out its backoff tries again at once, so
  that what changed meanwhile shows within a second or two.  A Retry-After
  the server sent is still waited out, and a server that is still down sees
  only the watches' backed-off retries and one probe a second.  The probe
  wakes the watches once; it asks again only after a watch has been up.

L{Outage} is pure, time passed in; L{Link} keeps one under a lock for the
watch threads, and runs the probe on a thread of its own.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from twisted.logger import Logger

log = Logger(namespace="kubernetai.kubernetes.link")

# At most one reminder a minute that a stanza's API server still fails it.
REMINDER_INTERVAL = 60.0
# How often a stanza none of whose watches is up asks its API server's /readyz: the bound
# on how long it stays behind once the server is back, for one cheap request a second.
PROBE_INTERVAL = 1.0
# A 403 is no outage but what the stanza's identity may not do: each refused watch is told
# once (until it is allowed), so that the log names every resource its role lacks.
FORBIDDEN = "API server answered 403"


@dataclass
class Outage:
    """Which watches of a stanza fail now, since when; the log lines their failures and returns are worth."""

    watches: int
    failing: dict[str, str] = field(default_factory=dict)
    since: float = 0.0
    reminded: float = 0.0
    forbidden: set[str] = field(default_factory=set)

    def failed(self, watch: str, error: str, now: float) -> str | None:
        """Watch C{watch} failed with C{error}: the warning to log, if any."""
        first = not self.failing
        self.failing[watch] = error
        newly_forbidden = error.startswith(FORBIDDEN) and watch not in self.forbidden
        if error.startswith(FORBIDDEN):
            self.forbidden.add(watch)
        if first:
            self.since = self.reminded = now
        if first or newly_forbidden:
            return f"{watch}: {error}; retrying"
        if now - self.reminded < REMINDER_INTERVAL:
            return None
        self.reminded = now
        return (f"still failing after {now - self.since:.0f}s, {len(self.failing)} of {self.watches} watches; "
                f"{watch}: {error}; retrying")

    def connected(self, watch: str, now: float) -> str | None:
        """Watch C{watch} is up: the line to log once the last failing watch is back."""
        self.forbidden.discard(watch)
        if self.failing.pop(watch, None) is None or self.failing:
            return None
        return f"connected again after {now - self.since:.1f}s"


class Link:
    """
    What a stanza's watch threads share: the outage, which watches are up, and
    the wake-up of those backing off once the API server is back.  C{name} is
    what the log calls the stanza (a reload may rename it); C{probe}, if given,
    asks the API server's /readyz once and never raises: None when it answers
    200, else the seconds of a Retry-After it sent (0 without one).
    """

    def __init__(self, name: str, watches: int = 1, probe: Callable[[], float | None] | None = None,
                 probe_interval: float = PROBE_INTERVAL) -> None:
        self.name = name
        self.probe = probe
        self.probe_interval = probe_interval
        self.outage = Outage(watches)
        self.up: set[str] = set()
        self.wakes = 0
        self.probe_armed = True
        self.stopped = False
        self.condition = threading.Condition()

    def start(self) -> None:
        """Start the probe's thread, if there is a probe."""
        if self.probe is not None:
            threading.Thread(target=self._probe_loop, name="kubernetai-probe", daemon=True).start()

    def stop(self) -> None:
        """End every wait and the probe."""
        with self.condition:
            self.stopped = True
            self.condition.notify_all()

    def interrupt(self) -> None:
        """Make every waiting watch look again whether it must stop."""
        with self.condition:
            self.condition.notify_all()

    def failed(self, watch: str, error: str) -> None:
        """Watch C{watch} failed with C{error}; logged as L{Outage} decides."""
        with self.condition:
            self.up.discard(watch)
            line = self.outage.failed(watch, error, time.monotonic())
            self.condition.notify_all()
        if line:
            log.warn("{stanza}: {line}", stanza=self.name, line=line)

    def connected(self, watch: str) -> None:
        """Watch C{watch} is up; if none was, the API server is back: the others stop waiting."""
        with self.condition:
            back = not self.up
            self.up.add(watch)
            self.probe_armed = True
            line = self.outage.connected(watch, time.monotonic())
            if back:
                self._wake()
        if line:
            log.info("{stanza}: {line}", stanza=self.name, line=line)

    def wait(self, delay: float, not_before: float, woken: int, stopping: threading.Event) -> None:
        """Wait out a watch's backoff of C{delay} seconds, or less once the API server is back
        (a wake-up since C{woken}), but at least C{not_before} seconds; until C{stopping} is set."""
        with self.condition:
            start = time.monotonic()
            while not (self.stopped or stopping.is_set()):
                waited = time.monotonic() - start
                until = not_before if self.wakes != woken else delay
                if waited >= until:
                    return
                self.condition.wait(until - waited)

    def _wake(self) -> None:
        self.wakes += 1
        self.condition.notify_all()

    def _probe_wanted(self) -> bool:
        return bool(self.probe_armed and not self.up and self.outage.failing)

    def _probe_loop(self) -> None:
        pause = self.probe_interval
        while self._pause_while_wanted(pause):
            retry_after = self.probe()
            with self.condition:
                if retry_after is None and self._probe_wanted():
                    self.probe_armed = False
                    self._wake()
            pause = max(self.probe_interval, retry_after or 0.0)

    def _pause_while_wanted(self, pause: float) -> bool:
        """Wait until the probe is wanted and has been for C{pause} seconds; False once stopped."""
        with self.condition:
            while not self.stopped:
                if not self._probe_wanted():
                    self.condition.wait()
                    continue
                due = time.monotonic() + pause
                while not self.stopped and self._probe_wanted() and time.monotonic() < due:
                    self.condition.wait(due - time.monotonic())
                if not self.stopped and self._probe_wanted():
                    return True
            return False
