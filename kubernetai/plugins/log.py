# -*- test-case-name: tests.test_plugins -*-
"""
log: one line per query in CoreDNS's log format, written once the reply is.

C{log [NAMES...] [FORMAT] { class success|denial|error|all... }}: only
queries under NAMES (default the root) whose reply is of one of the classes
are logged, in FORMAT (default CoreDNS's common log format).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from twisted.logger import Logger
from twisted.names import dns
from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import IHandler, Request, Response, ServerConfig
from kubernetai.corefile import Directive
from kubernetai.dnsnames import OPCODE_NAMES, class_name, rcode_name, type_name
from kubernetai.zones import in_zone, normalize_zone

log = Logger(namespace="kubernetai.plugins.log")

COMMON_FORMAT = (
    '{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" '
    "{rcode} {>rflags} {rsize} {duration}"
)
COMBINED_FORMAT = COMMON_FORMAT + ' "{>opcode}"'
CLASSES = ("success", "denial", "error", "all")
PLACEHOLDER = re.compile(r"\{[^{}]*\}")
FLAG_BITS = (("qr", 0x8000), ("aa", 0x0400), ("tc", 0x0200), ("rd", 0x0100), ("ra", 0x0080),
             ("z", 0x0040), ("ad", 0x0020), ("cd", 0x0010))


@dataclass(frozen=True)
class Rule:
    """Log queries under C{zone} whose reply class is in C{classes}, in C{format}."""

    zone: str
    format: str
    classes: frozenset[str]


def reply_class(response: Response) -> str:
    """CoreDNS's response class: success, denial or error."""
    if response.rcode == dns.OK:
        has_soa = any(record.type == dns.SOA for record in response.authority)
        return "denial" if not response.answers and has_soa else "success"
    if response.rcode == dns.ENAME and not response.answers:
        return "denial"
    return "error"


def reply_flags(reply: bytes) -> str:
    """The header flags of a wire reply as CoreDNS's log prints them: C{qr,aa,rd}."""
    header = int.from_bytes(reply[2:4], "big")
    return ",".join(name for name, bit in FLAG_BITS if header & bit)


def bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def placeholders(request: Request, response: Response, reply: bytes) -> dict[str, str]:
    """The value of every placeholder for one query and its reply."""
    duration = repr(round(max(0.0, time.monotonic() - request.received), 9)) + "s"
    bufsize = request.payload_size if request.edns else 512
    return {
        "{type}": type_name(request.qtype),
        "{name}": request.qname.decode("ascii", "replace") + ".",
        "{class}": class_name(request.qclass),
        "{proto}": request.protocol,
        "{remote}": bracketed(request.client[0]),
        "{local}": bracketed(request.local[0]) if request.local else "-",
        "{size}": str(request.size),
        "{port}": str(request.client[1]),
        "{duration}": duration,
        "{rcode}": rcode_name(response.rcode),
        "{rsize}": str(len(reply)),
        "{>rflags}": reply_flags(reply),
        "{>bufsize}": str(65535 if request.protocol == "tcp" else max(512, bufsize)),
        "{>do}": "true" if request.dnssec_ok else "false",
        "{>id}": str(request.message.id),
        "{>opcode}": OPCODE_NAMES.get(request.message.opCode, str(request.message.opCode)),
    }


def format_line(template: str, values: dict[str, str]) -> str:
    """C{template} with its placeholders filled in; unknown ones become C{-}."""
    return PLACEHOLDER.sub(lambda match: values.get(match.group(0), "-"), template)


@implementer(IHandler)
class Log:
    """Asks to see each reply, and logs those that match a rule."""

    name = "log"
    next = None

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules

    def serve(self, request: Request):
        rule = self._rule_for(request.name)
        if rule is not None:
            request.observe_reply(lambda req, response, reply: self._write(rule, req, response, reply))
        return self.next.serve(request)

    def _rule_for(self, name: str) -> Rule | None:
        for rule in self.rules:
            if in_zone(name, rule.zone):
                return rule
        return None

    def _write(self, rule: Rule, request: Request, response: Response, reply: bytes) -> None:
        if "all" in rule.classes or reply_class(response) in rule.classes:
            log.info("{line}", line=format_line(rule.format, placeholders(request, response, reply)))


def setup(directives: list[Directive], config: ServerConfig) -> Log:
    """C{log [NAMES...] [FORMAT] { class CLASSES... }}, once or more."""
    rules: list[Rule] = []
    for directive in directives:
        names, template = _names_and_format(directive.args)
        classes = _classes(directive)
        rules += [Rule(normalize_zone(name), template, classes) for name in names]
    config.plan.append("log")
    return Log(rules)


def _names_and_format(args: tuple[str, ...]) -> tuple[list[str], str]:
    if len(args) > 1 and "{" in args[-1]:
        template = args[-1].replace("{common}", COMMON_FORMAT).replace("{combined}", COMBINED_FORMAT)
        return list(args[:-1]), template
    return (list(args) or ["."]), COMMON_FORMAT


def _classes(directive: Directive) -> frozenset[str]:
    classes: set[str] = set()
    for option in directive.block:
        if option.name != "class":
            raise options.unknown(option, "property", ("class",))
        for name in options.arg_count(option, 1, None):
            if name not in CLASSES:
                raise options.error(option, f"invalid class {name!r}: expected one of {', '.join(CLASSES)}")
            classes.add(name)
    return frozenset(classes or {"all"})
