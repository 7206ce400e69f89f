# -*- test-case-name: tests.test_reload -*-
"""
reload: check the Corefile (and the files it imports) every INTERVAL, give
or take JITTER, and reload the daemon when its SHA512 changes, as CoreDNS's
reload plugin does.  C{reload [INTERVAL] [JITTER]}: 30s and 15s by default,
at least 2s and 1s; a JITTER over half the INTERVAL is cut to half of it.
The checking itself is the daemon's (kubernetai.daemon); this only reads
the directive.
"""

from __future__ import annotations

from kubernetai import options
from kubernetai.chain import ServerConfig
from kubernetai.corefile import Directive

DEFAULT_INTERVAL, DEFAULT_JITTER = 30.0, 15.0
MINIMUM_INTERVAL, MINIMUM_JITTER = 2.0, 1.0


def setup(directives: list[Directive], config: ServerConfig) -> None:
    """Record how often to check; the daemon's shortest INTERVAL across blocks wins."""
    directive = options.only_once(directives)
    options.no_block(directive)
    interval, jitter = parse_reload(directive)
    current = config.shared.reload
    if current is None or interval < current[0]:
        config.shared.reload = (interval, jitter)
    config.plan.append(f"reload every {interval:g}s ± {jitter:g}s")
    return None


def parse_reload(directive: Directive) -> tuple[float, float]:
    """(interval, jitter) in seconds, checked and adjusted as CoreDNS does."""
    args = options.arg_count(directive, 0, 2)
    interval = options.parse_duration(directive, args[0]) if args else DEFAULT_INTERVAL
    jitter = options.parse_duration(directive, args[1]) if len(args) > 1 else DEFAULT_JITTER
    if interval < MINIMUM_INTERVAL:
        raise options.error(directive, f"interval value must be greater or equal to {MINIMUM_INTERVAL:g}s")
    if jitter < MINIMUM_JITTER:
        raise options.error(directive, f"jitter value must be greater or equal to {MINIMUM_JITTER:g}s")
    return interval, min(jitter, interval / 2)
