# -*- test-case-name: tests.test_health_ready -*-
"""
ready: C{GET /ready} answers 200 C{OK} once every plugin that reports
readiness is ready, and 503 with the names of those that are not, sorted
and comma separated, as CoreDNS's ready plugin does.  The reporters are
the kubernetai stanzas of every server block, each named as C{--validate}
shows it, C{kubernetai LABEL (URL)} (LABEL: the stanza's C{name}, else
C{#N ZONES}, its place among the Corefile's stanzas and its zones); a stanza
is ready once it has synced.

C{ready [ADDRESS] { monitor until-ready|continuously }}, ADDRESS C{:8181}
by default, once per server block.  With C{until-ready} (the default) a
reporter once ready is not asked again; with C{continuously} it is asked at
every request.  Once the daemon is stopping, C{/ready} answers 503
C{Shutting down}.

Ours beyond CoreDNS: C{GET /ready?verbose} answers the same status code
with a JSON document: C{status} (C{ok}, C{not ready} or C{shutting down}),
C{not_ready} (names), and C{stanzas}, per stanza its C{name}, C{stanza}
(its label, as in the metrics), C{zones}, C{synced}, C{api_server} (the URL,
no credentials), C{last_event} and C{stale_since} (Unix times or null),
C{objects} (counts by kind) and C{watches} (kind, namespace, up, last_error,
lists, restarts).

Unlike CoreDNS, where only the blocks that hold C{ready} report, every
stanza of the Corefile counts; a listener shared by several blocks must
have one C{monitor} mode.  With C{--workers}, the supervisor answers
C{/ready} from every worker's, through L{render_readiness} (L{kubernetai.supervisor}).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from twisted.logger import Logger
from twisted.web import resource

from kubernetai import options
from kubernetai.chain import ServerConfig, Shared
from kubernetai.corefile import Directive
from kubernetai.httpservice import as_json, listener, parse_address, plain

log = Logger(namespace="kubernetai.plugins.ready")

DEFAULT_ADDRESS = ":8181"
UNTIL_READY = "until-ready"
CONTINUOUSLY = "continuously"


@dataclass(frozen=True)
class ReadyConfig:
    """The C{ready} directive of a block: where it listens, how it asks."""

    address: str
    host: str
    port: int
    monitor: str


class Ready(resource.Resource):
    """C{/ready} (and C{/ready?verbose}) of one listener, over every readiness reporter."""

    def __init__(self, shared: Shared, monitor: str) -> None:
        super().__init__()
        self.shared = shared
        self.monitor = monitor
        self.latched: set[int] = set()

    def not_ready(self) -> list[str]:
        """The names of the reporters not ready now, sorted; with until-ready, ready ones are not asked again."""
        names = []
        for index, (name, ready) in enumerate(self.shared.readiness):
            if index in self.latched:
                continue
            if not ready():
                names.append(name)
            elif self.monitor == UNTIL_READY:
                self.latched.add(index)
        return sorted(names)

    def render(self, request) -> bytes:
        stopping = not request.site.service.running
        not_ready = [] if stopping else self.not_ready()
        return render_readiness(request, stopping, not_ready,
                                lambda: {"stanzas": [stanza_report(s) for s in self.shared.stanzas]})


def render_readiness(request, stopping: bool, not_ready: list[str], details) -> bytes:
    """Answer C{/ready}: 200 OK, 503 with the names not ready, or 503 Shutting down; with
    C{?verbose}, JSON: the status, the names, and what C{details()} adds."""
    code = 503 if stopping or not_ready else 200
    if wants_verbose(request):
        status = "shutting down" if stopping else "not ready" if not_ready else "ok"
        return as_json(request, code, {"status": status, "not_ready": not_ready, **details()})
    if stopping:
        return plain(request, code, "Shutting down")
    if not_ready:
        log.info('Plugins not ready: "{names}"', names=",".join(not_ready))
        return plain(request, code, ",".join(not_ready))
    return plain(request, code, "OK")


def wants_verbose(request) -> bool:
    """Whether the query string names C{verbose}, with or without a value (Twisted drops it without one)."""
    return b"verbose" in parse_qs(request.uri.partition(b"?")[2], keep_blank_values=True)


def stanza_report(stanza) -> dict:
    """A stanza's name, label and zones, and its cluster's status."""
    return {"name": stanza.describe(), "stanza": stanza.label, "zones": list(stanza.config.zones),
            **stanza.cluster.status()}


def setup(directives: list[Directive], config: ServerConfig) -> None:
    """Attach C{/ready} to the listener of the block's address; ready has no handler."""
    directive = options.only_once(directives)
    ready = parse(directive)
    http = listener(config, ready.host, ready.port)
    served = http.attach("ready", lambda: Ready(config.shared, ready.monitor))
    if served.monitor != ready.monitor:
        raise options.error(
            directive,
            f"ready {ready.address} is monitored {served.monitor} in another server block, not {ready.monitor}",
        )
    config.plan.append(f"ready {ready.address} (monitor {ready.monitor})")
    return None


def parse(directive: Directive) -> ReadyConfig:
    """C{ready [ADDRESS] { monitor until-ready|continuously }}."""
    args = options.arg_count(directive, 0, 1)
    address = args[0] if args else DEFAULT_ADDRESS
    host, port = parse_address(directive, address)
    monitor = UNTIL_READY
    for option in directive.block:
        if option.name != "monitor":
            raise options.unknown(option, "property", ("monitor",))
        options.no_block(option)
        (monitor,) = options.arg_count(option, 1, 1)
        if monitor not in (UNTIL_READY, CONTINUOUSLY):
            raise options.error(option, f"monitor type {monitor!r} not supported")
    return ReadyConfig(address, host, port, monitor)
