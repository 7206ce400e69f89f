# -*- test-case-name: tests.test_explain -*-
"""
explain: ours, not CoreDNS's.  C{GET /explain?name=NAME&type=TYPE} tells
why the daemon gives NAME its answer (L{kubernetai.explain}): the server
block chosen, each plugin and stanza visited in order and what each
returned, the records, and whether a kept reply or the cache gives it.

C{explain [ADDRESS]}, ADDRESS C{127.0.0.1:8182} by default (loopback: an
address with another host, or none, as in C{:8182}, is the operator's
choice), once per server block; the blocks naming one address share its
listener (with health or ready too, when they name the same one).  Off
without the directive.

Parameters: C{name} (required), C{type} (default A), C{client} (the
address the query is asked as, default 127.0.0.1: acl, autopath and view
look at it), C{port} (only server blocks listening on that DNS port), and
C{format=json} for the document instead of text.  A bad parameter is a 400
saying which.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qs

from twisted.logger import Logger
from twisted.web import resource, server

from kubernetai import options
from kubernetai.chain import ServerConfig, Shared
from kubernetai.corefile import Directive
from kubernetai.explain import as_text, explain, name_problem, type_code
from kubernetai.httpservice import as_json, listener, parse_address, plain

log = Logger(namespace="kubernetai.plugins.explain")

DEFAULT_ADDRESS = "127.0.0.1:8182"


class BadQuestion(ValueError):
    """A parameter of /explain that cannot be asked."""


class Explain(resource.Resource):
    """C{/explain} over the server blocks of one Corefile."""

    isLeaf = True

    def __init__(self, shared: Shared) -> None:
        super().__init__()
        self.shared = shared

    def render_GET(self, request):
        try:
            name, qtype, client, port, as_document = question(parse_qs(request.uri.partition(b"?")[2].decode()))
        except BadQuestion as err:
            return plain(request, 400, f"{err}\n")

        def write(document: dict) -> None:
            request.write(as_json(request, 200, document) if as_document else plain(request, 200, as_text(document)))
            request.finish()

        def failed(failure) -> None:
            log.failure("explain {name} failed", failure, name=name)
            request.write(plain(request, 500, "explain failed; see the log\n"))
            request.finish()

        explain(self.shared.tables, name, qtype, client, port).addCallbacks(write, failed)
        return server.NOT_DONE_YET


def question(query: dict[str, list[str]]) -> tuple[str, int, str, int | None, bool]:
    """(name, type, client, port, JSON?) of /explain's query string; L{BadQuestion} says what is wrong."""
    name = _one(query, "name")
    if name is None:
        raise BadQuestion("name: missing; ask /explain?name=NAME&type=TYPE")
    problem = name_problem(name)
    if problem is not None:
        raise BadQuestion(f"name: {problem}")
    qtype = type_code(_one(query, "type") or "A")
    if qtype is None:
        raise BadQuestion(f"type: {_one(query, 'type')!r} is no DNS type (A, AAAA, SRV, PTR, TYPE65...)")
    client = _one(query, "client") or "127.0.0.1"
    try:
        ipaddress.ip_address(client)
    except ValueError:
        raise BadQuestion(f"client: {client!r} is no IP address") from None
    port = _one(query, "port")
    if port is not None and not (port.isdigit() and int(port) < 65536):
        raise BadQuestion(f"port: {port!r} is no port number")
    return name, qtype, client, None if port is None else int(port), _one(query, "format") == "json"


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[-1] if values else None


def setup(directives: list[Directive], config: ServerConfig) -> None:
    """Attach C{/explain} to the listener of the block's address; explain has no handler."""
    directive = options.only_once(directives)
    options.no_block(directive)
    args = options.arg_count(directive, 0, 1)
    address = args[0] if args else DEFAULT_ADDRESS
    host, port = parse_address(directive, address)
    listener(config, host, port).attach("explain", lambda: Explain(config.shared))
    config.plan.append(f"explain {address} (GET /explain?name=NAME&type=TYPE)")
    return None
