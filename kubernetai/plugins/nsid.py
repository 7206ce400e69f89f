# -*- test-case-name: tests.test_small_plugins -*-
"""
nsid: tells a client which server answered, as CoreDNS's nsid plugin does
(RFC 5001): to a query whose OPT record carries the NSID option, the reply's
OPT record carries NSID with DATA.  C{nsid [DATA...]}: the words joined by
spaces; the host's name by default.

Kept replies stay right without being marked: the server keeps a reply by
the query's bytes, the NSID option among them, and DATA is the same for
every client.
"""

from __future__ import annotations

import dataclasses
import socket

from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import IHandler, Request, Response, ServerConfig, then
from kubernetai.corefile import Directive
from kubernetai.message import edns_options

NSID = 3


def with_nsid(response: Response, data: bytes) -> Response:
    """C{response} with the NSID option set to C{data} (in place of one it had); never changed in place."""
    kept = tuple(option for option in response.edns_options if option[0] != NSID)
    return dataclasses.replace(response, edns_options=kept + ((NSID, data),))


@implementer(IHandler)
class Nsid:
    """Adds NSID to the replies of queries that ask for it."""

    name = "nsid"
    next = None

    def __init__(self, data: bytes) -> None:
        self.data = data

    def serve(self, request: Request):
        result = self.next.serve(request)
        if not request.edns or not any(code == NSID for code, _ in edns_options(request)):
            return result
        return then(result, with_nsid, self.data)


def parse_nsid(directives: list[Directive]) -> bytes:
    """The NSID data of the block's one C{nsid} directive."""
    directive = options.only_once(directives)
    options.no_block(directive)
    words = options.arg_count(directive, 0, None)
    text = " ".join(words) if words else socket.gethostname() or "localhost"
    return text.encode("utf-8")


def setup(directives: list[Directive], config: ServerConfig) -> Nsid:
    """C{nsid [DATA...]}."""
    data = parse_nsid(directives)
    config.plan.append(f"nsid {data.decode('utf-8')!r}")
    return Nsid(data)
