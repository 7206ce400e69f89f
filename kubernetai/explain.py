# -*- test-case-name: tests.test_explain -*-
"""
Why a name gets its answer: one question run through a traced copy of the
chain that would answer it, with what each part did written down.

The copy is made for each explained question (a shallow copy of every
handler of the chosen server block, linked through recorders, its
kubernetai stanzas wrapped the same way), so that the chain clients use
runs as it always does, with no tracing in it.  The copy shares the
handlers' state: an explained query may fill the cache as a client's
would; it is neither logged nor counted (those plugins watch replies as
the server writes them, and no reply is written here).

L{explain} gives a JSON-ready document; L{as_text} the lines an operator
reads.  No secret is in either: stanzas are named by label and API server
URL, as /ready names them.
"""

from __future__ import annotations

import copy
import functools
import socket

from twisted.internet import defer
from twisted.names import dns

from kubernetai.answer import lookup_through
from kubernetai.chain import EndOfChain, PluginError, Request, Response
from kubernetai.dnsnames import TYPES, rcode_name, type_name
from kubernetai.kubernetes.merge import MergedStanzas
from kubernetai.message import decode_query, valid_name
from kubernetai.plugins.kubernetai import Kubernetai


def type_code(text: str) -> int | None:
    """The query type named C{text} (C{A}, C{srv}, C{TYPE65}), or None."""
    text = text.upper()
    if text in TYPES:
        return TYPES[text]
    if text.startswith("TYPE") and text[4:].isdigit() and int(text[4:]) < 65536:
        return int(text[4:])
    return None


def name_problem(name: str) -> str | None:
    """What makes C{name} no name to ask about, or None."""
    try:
        wire_name = name.rstrip(".").encode("ascii")
    except UnicodeEncodeError:
        return f"{name!r} is not ASCII (write IDNs as xn--)"
    return None if valid_name(wire_name) else f"{name!r} is no DNS name"


def explain(tables: dict, name: str, qtype: int, client: str = "127.0.0.1", port: int | None = None):
    """A Deferred firing with why C{name} C{qtype}, asked over UDP by C{client}, gets its answer
    from the server blocks of C{tables} ({(host, port): ZoneTable}; C{port}: only that port's)."""
    return defer.ensureDeferred(_explain(tables, name, qtype, client, port))


async def _explain(tables: dict, name: str, qtype: int, client: str, port: int | None) -> dict:
    request = _request(name, qtype, client)
    document = {"question": {"name": request.name, "type": type_name(qtype), "client": client}}
    found = _route(tables, request, port)
    if found is None:
        document.update(server_block=None, steps=[], answer=summary(Response(rcode=dns.EREFUSED)))
        return document
    (host, listen_port), table, zone, config = found
    block = config.block
    document["server_block"] = {"keys": list(block.keys), "file": block.file, "line": block.line, "zone": zone,
                                "listener": f"{host or '*'}:{listen_port}"}
    document["kept_replies"] = kept_replies(table, request.name, qtype)
    request.zone, request.resolver = zone, lookup_through(table)
    steps: list[dict] = []
    try:
        response = await defer.maybeDeferred(traced_chain(config.handlers, steps).serve, request)
    except PluginError as err:
        response = Response(rcode=err.rcode)
        document["error"] = f"plugin/{err.plugin}: {err}"
    document["steps"] = steps
    document["answer"] = summary(response)
    return document


def _request(name: str, qtype: int, client: str):
    """The Request of C{name} C{qtype} with recursion desired, as a stub resolver sends it over UDP."""
    message = dns.Message(id=0, recDes=1)
    message.addQuery(name.rstrip(".").encode("ascii") or b"", qtype, dns.IN)
    return decode_query(message.toStr(), (client, 0), "udp")


def _route(tables: dict, request: Request, port: int | None):
    """((host, port), table, zone, config) of the first listener with a block for C{request}, or None."""
    for address, table in tables.items():
        if port is not None and address[1] != port:
            continue
        routed = table.route(request)
        if routed is not None:
            return (address, table, *routed)
    return None


def kept_replies(table, name: str, qtype: int) -> dict:
    """How many UDP replies to this question the server keeps to send again, and how many still hold."""
    wire = b"".join(bytes([len(label)]) + label for label in name.rstrip(".").encode("ascii").split(b".") if label)
    kept = held = 0
    for generation in (table.ready_replies, table.older_replies):
        for key, ready in list(generation.items()):
            if wire not in key.lower():
                continue
            message = dns.Message()
            message.fromStr(b"\0\0" + key)
            (question,) = message.queries
            if question.type == qtype and question.name.name.decode("ascii", "replace").lower() + "." == name:
                kept += 1
                held += bool(ready.valid_while())
    return {"kept": kept, "valid": held}


def traced_chain(handlers: list, steps: list[dict]):
    """A copy of the chain of C{handlers} whose every handler writes into C{steps} what it did."""
    copies = [copy.copy(_settled(handler)) for handler in handlers]
    traced = [_TracedHandler(handler, steps) for handler in copies]
    for handler, following in zip(copies, traced[1:] + [EndOfChain()]):
        handler.next = following
    return traced[0] if traced else EndOfChain()


def _settled(handler):
    """C{handler}, every cached property of it computed, so that a copy keeps it and does not walk its
    traced chain for it (autopath finds its stanzas so)."""
    for attribute, value in vars(type(handler)).items():
        if isinstance(value, functools.cached_property):
            getattr(handler, attribute)
    return handler


class _TracedHandler:
    """A handler of the traced chain: runs its copy and writes down what it returned."""

    def __init__(self, handler, steps: list[dict]) -> None:
        self.handler = handler
        self.name = handler.name
        self.steps = steps
        self.stanza_steps: list[dict] = []
        if isinstance(handler, Kubernetai):
            handler.order = [_TracedStanza(stanza, lambda: self.stanza_steps) for stanza in handler.order]

    def serve(self, request):
        step = {"plugin": self.name}
        if isinstance(self.handler, Kubernetai):
            step["stanzas"] = self.stanza_steps = []
        self.steps.append(step)
        after = len(self.steps)

        def returned(response: Response) -> Response:
            step.update(handed_on=len(self.steps) > after, returned=rcode_name(response.rcode))
            return response

        def failed(failure):
            step.update(handed_on=len(self.steps) > after, returned=f"error: {failure.getErrorMessage()}")
            return failure

        try:
            result = self.handler.serve(request)
        except Exception:
            step.update(handed_on=len(self.steps) > after, returned="error")
            raise
        if isinstance(result, defer.Deferred):
            return result.addCallbacks(returned, failed)
        return returned(result)


class _TracedStanza:
    """A stanza (or merge group) of the traced chain: answers as it does and writes down how, in the
    list C{steps_of()} gives (a new one for each query through the kubernetai handler)."""

    def __init__(self, stanza, steps_of) -> None:
        self.stanza = stanza
        self.steps_of = steps_of
        self.step: dict | None = None
        self.written_in: list | None = None
        if isinstance(stanza, MergedStanzas):
            self.stanza = copy.copy(stanza)
            self.stanza.members = [_TracedStanza(member, lambda: self._step()["members"]) for member in stanza.members]

    def __getattr__(self, name):
        return getattr(self.stanza, name)

    def _step(self) -> dict:
        steps = self.steps_of()
        if self.written_in is not steps:
            self.step, self.written_in = {"stanza": self.stanza.describe()}, steps
            if isinstance(self.stanza, MergedStanzas):
                self.step["members"] = []
            else:
                self.step["synced"] = self.stanza.cluster.synced
            steps.append(self.step)
        return self.step

    def zone_of(self, name: str):
        zone = self.stanza.zone_of(name)
        self._step()["zone"] = zone
        if zone is None:
            self.step["outcome"] = "not asked: the name is outside its zones"
        return zone

    def hands_on(self, now: float) -> bool:
        handing_on = self.stanza.hands_on(now)
        if handing_on:
            self._step()["outcome"] = f"handed on by failover: {self._why_handing_on()}"
        return handing_on

    def _why_handing_on(self) -> str:
        if isinstance(self.stanza, MergedStanzas):
            return "every member hands on"
        if not self.stanza.cluster.synced:
            return "not synced"
        return f"its watches have been down longer than {self.stanza.config.failover:g}s"

    def answer(self, qname: bytes, name: str, qtype: int, zone: str) -> Response:
        response = self.stanza.answer(qname, name, qtype, zone)
        step = self._step()
        step["outcome"] = outcome(response, step.get("synced", True))
        step["records"] = [record_text(record) for record in response.answers]
        return response

    def falls_through(self, name: str, response: Response) -> bool:
        through = self.stanza.falls_through(name, response)
        if response.rcode == dns.ENAME:
            step = self._step()
            step["outcome"] = step.get("outcome", "NXDOMAIN") + (
                "; falls through to what follows (fallthrough)" if through else "; stands (no fallthrough for the name)")
        return through


def outcome(response: Response, synced: bool) -> str:
    """What a stanza's reply says, in words."""
    if response.rcode == dns.OK:
        return f"answered: {len(response.answers)} record(s)" if response.answers else "NODATA: the name has no such records"
    if response.rcode == dns.ESERVER and not synced:
        return "SERVFAIL: not synced yet, the name is not known"
    return rcode_name(response.rcode)


def summary(response: Response) -> dict:
    """The reply: rcode, sections as zone-file lines, and whether the server may send it again as it is."""
    return {"rcode": rcode_name(response.rcode),
            "answers": [record_text(record) for record in response.answers],
            "authority": [record_text(record) for record in response.authority],
            "additional": [record_text(record) for record in response.additional],
            "kept_to_send_again": response.valid_while is not None}


def record_text(record: dns.RRHeader) -> str:
    """A record as a zone-file line."""
    return f"{record.name.name.decode('ascii', 'replace')}. {record.ttl} IN {type_name(record.type)} {rdata_text(record)}"


def rdata_text(record: dns.RRHeader) -> str:
    payload = record.payload
    if record.type == dns.A:
        return payload.dottedQuad()
    if record.type == dns.AAAA:
        return socket.inet_ntop(socket.AF_INET6, payload.address)
    if record.type in (dns.CNAME, dns.PTR, dns.NS):
        return f"{payload.name}."
    if record.type == dns.SRV:
        return f"{payload.priority} {payload.weight} {payload.port} {payload.target}."
    if record.type == dns.SOA:
        return (f"{payload.mname}. {payload.rname}. {payload.serial} {payload.refresh} {payload.retry} "
                f"{payload.expire} {payload.minimum}")
    if record.type == dns.TXT:
        return " ".join('"' + part.decode("ascii", "replace") + '"' for part in payload.data)
    return str(payload)


def as_text(document: dict) -> str:
    """The explanation as an operator reads it."""
    question = document["question"]
    lines = [f"question: {question['name']} {question['type']} (asked over UDP by {question['client']})"]
    block = document["server_block"]
    if block is None:
        lines.append("server block: none serves this name: REFUSED")
        return "\n".join(lines) + "\n"
    lines.append(f"server block: {' '.join(block['keys'])} ({block['file']}:{block['line']}), zone {block['zone']}, "
                 f"listening on {block['listener']}")
    kept = document["kept_replies"]
    if kept["valid"]:
        lines.append(f"kept reply: {kept['valid']} still valid: the server sends it again without running the chain")
    else:
        lines.append(f"kept reply: {'none' if not kept['kept'] else 'none still valid'}")
    lines.append("plugins in the order they ran:")
    for number, step in enumerate(document["steps"], 1):
        lines.append(f"  {number}. {step['plugin']}: {_plugin_words(step)}")
        for stanza in step.get("stanzas", ()):
            lines += _stanza_lines(stanza, "       ")
    if "error" in document:
        lines.append(f"error: {document['error']}")
    answer = document["answer"]
    lines.append(f"answer: {answer['rcode']}"
                 f"{', kept to send again while its data holds' if answer['kept_to_send_again'] else ''}")
    for section in ("answers", "authority", "additional"):
        lines += [f"  {section}: {record}" for record in answer[section]]
    return "\n".join(lines) + "\n"


def _plugin_words(step: dict) -> str:
    returned = step.get("returned", "(no reply yet)")
    if step.get("handed_on"):
        return f"handed on; returned {returned}"
    if step["plugin"] == "cache":
        return f"answered from its cache: {returned}"
    return f"answered {returned}"


def _stanza_lines(stanza: dict, indent: str, bullet: str = "") -> list[str]:
    synced = "" if "synced" not in stanza else (", synced" if stanza["synced"] else ", not synced")
    lines = [f"{indent}{bullet}{stanza['stanza']}{synced}: {stanza.get('outcome', 'not asked')}"]
    indent += " " * len(bullet)
    lines += [f"{indent}    {record}" for record in stanza.get("records", ())]
    for member in stanza.get("members", ()):
        lines += _stanza_lines(member, indent + "  ", "- ")
    return lines
