# -*- test-case-name: tests.test_small_plugins -*-
"""
chaos: answers TXT queries of class CH about the server, as CoreDNS's chaos
plugin does: C{version.bind} and C{version.server} with VERSION,
C{authors.bind} with the AUTHORS (one TXT record each, in random order),
C{hostname.bind} and C{id.server} with the host's name.  C{chaos [VERSION
[AUTHORS...]]}: VERSION is C{kubernetai-}I{version} by default; AUTHORS are
sorted, repeats dropped; each string is cut to 255 octets.

Where it differs: a block without chaos REFUSEs every class but IN, so CH
queries reach the chain only in a block with chaos; there, a CH query chaos
does not answer (another name, another type) is REFUSED too instead of going
down the chain, which serves class IN only.  The default AUTHORS are
kubernetai's, not CoreDNS's maintainers.
"""

from __future__ import annotations

import random
import socket

from twisted.names import dns
from zope.interface import implementer

from kubernetai import __version__, options
from kubernetai.chain import IHandler, Request, Response, ServerConfig
from kubernetai.corefile import Directive
from kubernetai.reuse import always

DEFAULT_VERSION = f"kubernetai-{__version__}"
DEFAULT_AUTHORS = ("The kubernetai authors",)
MAX_STRING = 255
VERSION_NAMES = ("version.bind.", "version.server.")
HOSTNAME_NAMES = ("hostname.bind.", "id.server.")
AUTHORS_NAME = "authors.bind."


def text(value: str) -> bytes:
    """C{value} as a TXT string: UTF-8, cut to 255 octets."""
    return value.encode("utf-8")[:MAX_STRING]


@implementer(IHandler)
class Chaos:
    """The server's version, authors and host name, in class CH."""

    name = "chaos"
    next = None

    def __init__(self, version: bytes, authors: tuple[bytes, ...]) -> None:
        self.version = version
        self.authors = authors

    def serve(self, request: Request):
        if request.qclass != dns.CH:
            return self.next.serve(request)
        if request.qtype != dns.TXT:
            return Response(rcode=dns.EREFUSED, valid_while=always)
        if request.name in VERSION_NAMES:
            return self.txt(request, [self.version], always)
        if request.name in HOSTNAME_NAMES:
            return self.txt(request, [text(socket.gethostname() or "localhost")], always)
        if request.name == AUTHORS_NAME:
            shuffled = random.sample(self.authors, len(self.authors))
            return self.txt(request, shuffled, always if len(self.authors) == 1 else None)
        return Response(rcode=dns.EREFUSED, valid_while=always)

    @staticmethod
    def txt(request: Request, strings: list[bytes], valid_while) -> Response:
        """One TXT record in class CH, TTL 0, for each of C{strings}."""
        records = [dns.RRHeader(request.qname, dns.TXT, dns.CH, 0, dns.Record_TXT(string, ttl=0))
                   for string in strings]
        return Response(answers=records, valid_while=valid_while)


def parse_chaos(directives: list[Directive]) -> tuple[bytes, tuple[bytes, ...]]:
    """(version, authors) of the block's one C{chaos} directive."""
    directive = options.only_once(directives)
    options.no_block(directive)
    args = options.arg_count(directive, 0, None)
    version = text(args[0]) if args else text(DEFAULT_VERSION)
    authors = sorted({text(author) for author in args[1:]}) or [text(author) for author in DEFAULT_AUTHORS]
    return version, tuple(authors)


def setup(directives: list[Directive], config: ServerConfig) -> Chaos:
    """C{chaos [VERSION [AUTHORS...]]}; the block then takes queries of class CH."""
    version, authors = parse_chaos(directives)
    config.classes.add(dns.CH)
    config.plan.append(f"chaos version {version.decode('utf-8', 'replace')!r}, {len(authors)} author(s)")
    return Chaos(version, authors)
