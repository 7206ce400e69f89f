# -*- test-case-name: tests.test_health_ready -*-
"""
The HTTP listeners of the plugins that answer over HTTP (health, ready).

There is one listener per address, however many server blocks and plugins
ask for it: each plugin attaches its path (C{/health}, C{/ready}) to the
listener of its address, kept in C{config.shared.http_listeners}.  Any other path
is 404, as with Go's ServeMux.  Requests are not logged (CoreDNS logs none,
and probes come every few seconds).

Addresses are read as CoreDNS reads them, C{HOST:PORT} with Go's
C{net.SplitHostPort}: C{:8080}, C{127.0.0.1:8080}, C{[::1]:8080},
C{localhost:8080}.  An empty host listens on every address, IPv6 and IPv4.
Ports must be numbers (CoreDNS takes service names such as C{http} too).

On stop, a listener keeps answering until every hold a plugin put on it
has fired (health's lameduck), then closes.  While it is stopping, its
C{running} is false: ready answers "Shutting down" then.

A worker (C{--workers}) listens on a private port of 127.0.0.1 instead of
the configured address; the supervisor serves that address by asking its
workers (L{kubernetai.supervisor}).
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Callable

from twisted.application import service
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.web import resource, server

from kubernetai import options
from kubernetai.chain import ServerConfig
from kubernetai.corefile import Directive

PRIVATE_HOST = "127.0.0.1"
_ADDRESS = re.compile(r"(?:\[(?P<ipv6>[^\[\]]*)\]|(?P<host>[^\[\]:]*)):(?P<port>[^\[\]:]*)")


def parse_address(directive: Directive, text: str) -> tuple[str, int]:
    """(host, port) of C{text}, C{HOST:PORT} or C{[IPv6]:PORT}; the host is empty for every address."""
    match = _ADDRESS.fullmatch(text)
    if match is None:
        raise options.error(directive, f"address {text}: {_address_problem(text)}")
    port = match.group("port")
    if not port.isdigit() or int(port) > 65535:
        raise options.error(directive, f"address {text}: invalid port {port!r}: expected a number from 0 to 65535")
    host = match.group("host")
    if host is None:
        host = match.group("ipv6")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise options.error(directive, f"address {text}: expected an IPv6 address in brackets") from None
    return host, int(port)


def _address_problem(text: str) -> str:
    """What Go's net.SplitHostPort would say of an address that does not parse."""
    if ":" not in text or text.endswith("]"):
        return "missing port in address"
    if not text.startswith("["):
        return "too many colons in address"
    return "expected HOST:PORT or [IPv6]:PORT"


class HTTPService(service.Service):
    """
    One HTTP listener on (host, port), serving the paths plugins attached.
    C{port} is the listening port while it runs (C{port.getHost().port}
    tells which one port 0 got).
    """

    def __init__(self, host: str, port: int, reactor) -> None:
        self.host = host
        self.port_number = port
        self.reactor = reactor
        self.paths = _Paths()
        self.site = HTTPSite(self.paths)
        self.site.service = self
        self._holds: list[Callable[[], defer.Deferred]] = []
        self.port = None

    def attach(self, path: str, make: Callable[[], resource.Resource]) -> resource.Resource:
        """The resource at C{/path}: made by C{make} the first time, the same one after."""
        name = path.encode("ascii")
        if name not in self.paths.children:
            self.paths.putChild(name, make())
        return self.paths.children[name]

    def take_over(self, replacement: HTTPService) -> None:
        """Serve what C{replacement} was set up to serve, on this running listener (a reload)."""
        self.paths = replacement.paths
        self.site.resource = replacement.paths
        self._holds = replacement._holds

    def hold_stop(self, hold: Callable[[], defer.Deferred]) -> None:
        """On stop, keep answering until the Deferred C{hold()} returns has fired."""
        self._holds.append(hold)

    def listen_privately(self) -> None:
        """Listen on a port of 127.0.0.1 the system picks, not the configured address: a worker's
        listener, which the supervisor asks (L{kubernetai.supervisor})."""
        self.host, self.port_number = PRIVATE_HOST, 0

    def startService(self) -> None:
        super().startService()
        self.port = self._listen()

    def _listen(self):
        if self.host:
            return self.reactor.listenTCP(self.port_number, self.site, interface=self.host)
        try:
            return self.reactor.listenTCP(self.port_number, self.site, interface="::")
        except CannotListenError:
            # A host without IPv6: every IPv4 address then.
            return self.reactor.listenTCP(self.port_number, self.site, interface="0.0.0.0")

    def stopService(self):
        super().stopService()
        holds = defer.gatherResults([hold() for hold in self._holds])
        return holds.addCallback(lambda _: self._close())

    def _close(self):
        port, self.port = self.port, None
        return port.stopListening() if port is not None else None


def listener(config: ServerConfig, host: str, port: int) -> HTTPService:
    """The listener on (host, port) that every server block shares, made on first use."""
    key = (host, port)
    if key not in config.shared.http_listeners:
        config.shared.http_listeners[key] = HTTPService(host, port, config.reactor)
    return config.shared.http_listeners[key]


def plain(request, code: int, text: str) -> bytes:
    """Answer C{request} with C{code} and C{text} as plain text, as Go's handlers write it."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return text.encode("utf-8")


def as_json(request, code: int, document) -> bytes:
    """Answer C{request} with C{code} and C{document} as JSON."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(document, indent=2).encode("utf-8") + b"\n"


class _Paths(resource.Resource):
    """The attached paths; anything else, C{/} included, is 404."""

    def render(self, request) -> bytes:
        return resource.NoResource().render(request)


class HTTPSite(server.Site):
    """A Site that writes no access log."""

    noisy = False

    def log(self, request) -> None:
        """Log nothing: CoreDNS logs no health or readiness request."""
