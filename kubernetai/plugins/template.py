# -*- test-case-name: tests.test_template -*-
"""
template: answers made from Go templates for the names a regular expression
matches, as CoreDNS's template plugin makes them.

C{template CLASS TYPE [ZONE...] { match REGEX...; answer RR; additional RR;
authority RR; rcode CODE; ederror CODE [REASON]; fallthrough [ZONE...] }},
any number per server block, tried in Corefile order.  A query in one of a
template's zones (the block's by default), of its class and type (C{ANY}
on either side matches every one), whose name (lower case, with the final
dot) one of its regexes matches (default C{.*}; Go's syntax, checked by
L{kubernetai.goregexp}), is answered: authoritative, with RCODE (NOERROR by
default) and each section's templates rendered (L{kubernetai.gotemplate},
L{kubernetai.gorender}) and read as zone-file lines (L{kubernetai.rrtext}).  A CNAME answered to an
A or AAAA question is followed through the server, its records appended.
With C{rcode SERVFAIL} the reply is a bare SERVFAIL.  A name no regex
matches goes to the next template (and after the last, the next plugin)
with C{fallthrough} for it, else is SERVFAIL; another class or type always
goes on.  A template that fails to render, or renders no record, is SERVFAIL
and logged by errors.  The block takes the queries of the classes its
templates name (C{ANY}: IN, CS, CH and HS), and of class ANY.

Templates see C{.Zone}, C{.Name}, C{.Regex}, C{.Class}, C{.Type}, C{.Match}
(C{index .Match 1}), C{.Group} (named and numbered groups), C{.Remote},
C{.Question} (C{.Name}, C{.Qtype}, C{.Qclass}), C{.Message} (its header
fields and C{.Question}) and C{.Meta "NAME"}; metrics are CoreDNS's
C{coredns_template_matches_total}, C{coredns_template_template_failures_total}
and C{coredns_template_rr_failures_total}.

Where it differs from CoreDNS: C{var} and C{expr} (the expr language) are
refused by name, as is any part of Go's template language
L{kubernetai.gotemplate} does not run and any part of a regex Python would
read otherwise; C{.Meta} is always empty (no metadata plugin);
C{.Message} is not printed whole; record types other than rrtext's are a
SERVFAIL; the Extended DNS Error of C{ederror} rides in the reply only when
the query has EDNS (CoreDNS adds an OPT record of its own); rcodes above 15
are refused; replies are built anew for every query.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from twisted.internet import defer
from twisted.names import dns
from zope.interface import implementer

from kubernetai import gorender, gotemplate, options
from kubernetai.chain import IHandler, PluginError, Request, Response, ServerConfig
from kubernetai.corefile import Directive
from kubernetai.goregexp import GoRegexpError, compile_go
from kubernetai.dnsnames import CLASS_NAMES, CLASSES, RCODES, TYPE_NAMES, TYPES, class_name, rcode_name, type_name
from kubernetai.metrics import NAMESPACE, Counts, block_server, instances
from kubernetai.rrtext import RRTextError, parse_rr
from kubernetai.zones import Fallthrough, most_specific

MAX_REGEX_LENGTH = 10000
EXTENDED_ERROR = 15
MAX_HEADER_RCODE = 15  # what a reply without EDNS carries
SECTIONS = ("answer", "additional", "authority")
# The fields templates may read of .Message and .Question (Go's dns.Msg and dns.Question have more).
MESSAGE_FIELDS = frozenset({"Id", "Response", "Opcode", "Authoritative", "Truncated", "RecursionDesired",
                            "RecursionAvailable", "AuthenticatedData", "CheckingDisabled", "Rcode", "Question"})
QUESTION_FIELDS = frozenset({"Name", "Qtype", "Qclass"})
# What a template of class ANY opens the block to, beside queries of class ANY.
ANY_CLASSES = (dns.IN, dns.CS, dns.CH, dns.HS)


@dataclass(frozen=True)
class Rule:
    """One C{template} directive."""

    zones: tuple[str, ...]
    qclass: int
    qtype: int
    regexes: tuple = ()
    answer: tuple[gotemplate.Template, ...] = ()
    additional: tuple[gotemplate.Template, ...] = ()
    authority: tuple[gotemplate.Template, ...] = ()
    rcode: int = dns.OK
    ederror: bytes | None = None  # the EDE option's data: code and extra text
    fallthrough: Fallthrough | None = None

    def asks(self, qclass: int, qtype: int) -> bool:
        """Whether a question of C{qclass} and C{qtype} is this template's (ANY matching all)."""
        return (self.qclass in (dns.ANY, qclass) or qclass == dns.ANY) and \
            (self.qtype in (dns.ANY, qtype) or qtype == dns.ANY)

    def falls_through(self, name: str) -> bool:
        return self.fallthrough is not None and self.fallthrough.through(name)

    def describe(self) -> str:
        """The C{--validate} plan line."""
        parts = [f"{len(self.regexes)} regex(es)", *(f"{len(getattr(self, part))} {part}" for part in SECTIONS)]
        if self.rcode != dns.OK:
            parts.append(f"rcode {rcode_name(self.rcode)}")
        if self.fallthrough is not None:
            parts.append("fallthrough")
        return f"template {class_name(self.qclass)} {type_name(self.qtype)} {' '.join(self.zones)}: {', '.join(parts)}"


@dataclass(frozen=True)
class Match:
    """A template's match of a query: its zone, the regex and what it matched, as the templates see it."""

    zone: str
    regex: str
    groups: list[str]
    named: dict[str, str]
    cls: str
    type: str


def presentation(qname: bytes) -> str:
    """A name from the wire as miekg/dns prints it: special and unprintable octets escaped, with the final dot."""
    labels = []
    for label in qname.split(b"."):
        labels.append("".join(chr(byte) if 0x20 < byte < 0x7f and byte not in b"\\\"();@'" else
                              "\\" + chr(byte) if 0x20 <= byte < 0x7f else f"\\{byte:03d}" for byte in label))
    return ".".join(labels).rstrip(".") + "."


def match(rule: Rule, name: str, qclass: int, qtype: int) -> Match | None:
    """C{rule}'s match of C{name} (None: none), its first regex that matches."""
    zone = most_specific(name, rule.zones)
    for source, regex in rule.regexes:
        found = regex.search(name)
        if found is None:
            continue
        groups = [text or "" for text in (found.group(0), *found.groups())]
        named = {str(number): text for number, text in enumerate(groups)}
        named.update({key: text or "" for key, text in found.groupdict().items()})
        cls = CLASS_NAMES.get(qclass if qclass != dns.ANY else rule.qclass, "")  # miekg/dns's ClassToString[...]
        rtype = TYPE_NAMES.get(qtype if qtype != dns.ANY else rule.qtype, "")
        return Match(zone, source, groups, named, cls, rtype)
    return None


def template_data(request: Request, name: str, found: Match) -> gorender.Struct:
    """What a template's dot is: CoreDNS's templateData."""
    message = request.message
    question = _question(request.qname, request.qclass, request.qtype)
    header = {"Id": gorender.Uint16(message.id), "Response": bool(message.answer), "Opcode": message.opCode,
              "Authoritative": bool(message.auth), "Truncated": bool(message.trunc),
              "RecursionDesired": bool(message.recDes), "RecursionAvailable": bool(message.recAv),
              "AuthenticatedData": bool(message.authenticData), "CheckingDisabled": bool(message.checkingDisabled),
              "Rcode": message.rCode, "Question": [question]}
    fields = {"Zone": found.zone, "Name": name, "Regex": found.regex, "Match": found.groups, "Group": found.named,
              "Class": found.cls, "Type": found.type, "Message": gorender.Struct("*dns.Msg", header),
              "Question": question, "Remote": request.client[0]}
    return gorender.Struct("*template.templateData", fields, {"Meta": ((str,), lambda _name: "")})


def _question(qname: bytes, qclass: int, qtype: int) -> gorender.Struct:
    name = presentation(qname)
    fields = {"Name": name, "Qtype": gorender.Uint16(qtype), "Qclass": gorender.Uint16(qclass)}
    return gorender.Struct("*dns.Question", fields, text=f";{name}\t{class_name(qclass)}\t {type_name(qtype)}")


class TemplateCounts:
    """The template plugin's counters, CoreDNS's three."""

    def __init__(self) -> None:
        self.matches = Counts(f"{NAMESPACE}_template_matches_total", "Counter of template regex matches.",
                              ("server", "zone", "view", "class", "type"))
        sectioned = ("server", "zone", "view", "class", "type", "section", "template")
        self.templates = Counts(f"{NAMESPACE}_template_template_failures_total", "Counter of go template failures.",
                                sectioned)
        self.records = Counts(f"{NAMESPACE}_template_rr_failures_total", "Counter of mis-templated RRs.", sectioned)


@implementer(IHandler)
class Template:
    """Answers from templates for the names their regexes match."""

    name = "template"
    next = None

    def __init__(self, rules: tuple[Rule, ...], server: str, counts: TemplateCounts) -> None:
        self.rules = rules
        self.zones = tuple(zone for rule in rules for zone in rule.zones)
        self.server = server
        self.counts = counts

    def serve(self, request: Request):
        name = presentation(request.qname).lower()  # CoreDNS's state.Name()
        if most_specific(name, self.zones) is None:
            return self.next.serve(request)
        for rule in self.rules:
            if most_specific(name, rule.zones) is None or not rule.asks(request.qclass, request.qtype):
                continue
            found = match(rule, name, request.qclass, request.qtype)
            if found is None:
                if rule.falls_through(name):
                    continue
                return Response(rcode=dns.ESERVER)
            self.counts.matches.inc((self.server, found.zone, "", found.cls, found.type))
            if rule.rcode == dns.ESERVER:
                return Response(rcode=dns.ESERVER)
            return self.answer(request, rule, found, template_data(request, name, found))
        return self.next.serve(request)

    def answer(self, request: Request, rule: Rule, found: Match, data: gorender.Struct):
        sections = {section: [self.record(template, section, found, data) for template in getattr(rule, section)]
                    for section in SECTIONS}
        response = Response(rcode=rule.rcode, answers=sections["answer"], authority=sections["authority"],
                            additional=sections["additional"], authoritative=True,
                            edns_options=() if rule.ederror is None else ((EXTENDED_ERROR, rule.ederror),))
        if request.qtype in (dns.A, dns.AAAA) and any(record.type == dns.CNAME for record in response.answers):
            return follow(request, response)
        return response

    def record(self, template: gotemplate.Template, section: str, found: Match, data) -> dns.RRHeader:
        """One rendered record; a PluginError (SERVFAIL, logged) counted as CoreDNS counts it when it fails."""
        key = (self.server, found.zone, "", found.cls, found.type, section, gotemplate.go_string(template))
        try:
            text = gorender.execute(template, data)
        except gotemplate.TemplateError as error:
            self.counts.templates.inc(key)
            raise PluginError(self.name, str(error)) from None
        try:
            return parse_rr(text)
        except RRTextError as error:
            self.counts.records.inc(key)
            raise PluginError(self.name, str(error)) from None


@defer.inlineCallbacks
def follow(request: Request, response: Response):
    """C{response} with what the server answers for each CNAME target appended after its CNAME, as CoreDNS's
    upstream does."""
    answers = []
    for record in response.answers:
        answers.append(record)
        if record.type != dns.CNAME:
            continue
        try:
            resolved = yield request.lookup(record.payload.name.name.decode("ascii", "replace") + ".", request.qtype)
        except PluginError:
            continue
        answers += resolved.answers
        response.truncated = resolved.truncated
    response.answers = answers
    return response


def template_families(handlers: list[Template]):
    """The three counters of every template handler in the daemon."""
    total = TemplateCounts()
    for handler in handlers:
        for mine, theirs in ((total.matches, handler.counts.matches), (total.templates, handler.counts.templates),
                             (total.records, handler.counts.records)):
            mine.add(theirs)
    yield from (total.matches.family(), total.templates.family(), total.records.family())


def setup(directives: list[Directive], config: ServerConfig) -> Template:
    """Every C{template} directive of the block, in order."""
    server_zones = [address.zone for address in config.zones]
    rules = tuple(parse_rule(directive, server_zones) for directive in directives)
    for rule in rules:
        config.classes |= {*ANY_CLASSES, dns.ANY} if rule.qclass == dns.ANY else {rule.qclass, dns.ANY}
        config.plan.append(rule.describe())
    handler = Template(rules, block_server(config), TemplateCounts())
    instances(config, "template", template_families).append(handler)
    return handler


def parse_rule(directive: Directive, server_zones) -> Rule:
    """One C{template CLASS TYPE [ZONE...] { ... }}."""
    args = options.arg_count(directive, 2, None)
    if args[0] not in CLASSES:
        raise options.error(directive, f"invalid query class {args[0]}")
    if args[1] not in TYPES:
        raise options.error(directive, f"invalid RR type {args[1]}")
    rule = options.parse_options(directive, Rule((), CLASSES[args[0]], TYPES[args[1]]), OPTION_PARSERS, "option")
    return replace(rule, zones=options.zones(directive, args[2:], server_zones),
                   regexes=rule.regexes or (_regex(directive, ".*"),))


def _match(option: Directive, rule: Rule) -> Rule:
    return replace(rule, regexes=rule.regexes + tuple(_regex(option, text)
                                                      for text in options.arg_count(option, 1, None)))


def _section(section: str):
    def parse(option: Directive, rule: Rule) -> Rule:
        added = tuple(_template(option, text) for text in options.arg_count(option, 1, None))
        return replace(rule, **{section: getattr(rule, section) + added})

    return parse


def _rcode(option: Directive, rule: Rule) -> Rule:
    (text,) = options.arg_count(option, 1, 1)
    if text not in RCODES:
        raise options.error(option, f"unknown rcode {text}")
    if RCODES[text] > MAX_HEADER_RCODE:
        raise options.error(option, f"rcode {text} is not supported by kubernetai (it needs EDNS)")
    return replace(rule, rcode=RCODES[text])


def _ederror(option: Directive, rule: Rule) -> Rule:
    code, *reason = options.arg_count(option, 1, 2)
    if not (code.isascii() and code.isdigit()) or int(code) > 0xFFFF:
        raise options.error(option, f"error parsing extended DNS error code {code}: expected 0 to 65535")
    return replace(rule, ederror=struct.pack("!H", int(code)) + "".join(reason).encode("utf-8"))


def _fallthrough(option: Directive, rule: Rule) -> Rule:
    return replace(rule, fallthrough=Fallthrough(options.zones(option, option.args, ())))


def _expr_language(option: Directive, rule: Rule) -> Rule:
    raise options.error(option, f"{option.name!r} (the expr language) is not supported by kubernetai")


OPTION_PARSERS = {
    "match": _match,
    **{section: _section(section) for section in SECTIONS},
    "rcode": _rcode,
    "ederror": _ederror,
    "fallthrough": _fallthrough,
    "upstream": lambda option, rule: rule,  # CoreDNS reads and ignores it ("remove soon")
    "var": _expr_language,
    "expr": _expr_language,
}


def _regex(option: Directive, text: str):
    if len(text) > MAX_REGEX_LENGTH:
        raise options.error(option, f"regex pattern too long: {len(text)} > {MAX_REGEX_LENGTH}")
    try:
        return text, compile_go(text)
    except GoRegexpError as error:
        raise options.error(option, f"could not parse regex: {text}, {error}") from None


def _template(option: Directive, text: str) -> gotemplate.Template:
    try:
        template = gotemplate.parse(option.name, text)
    except gotemplate.TemplateError as error:
        raise options.error(option, f"could not compile template: {error}") from None
    for node in gotemplate.top_fields(template):
        refused = _refused_field(node.names)
        if refused:
            raise options.error(option, f"could not compile template: {node} {refused} is not supported by kubernetai")
    return template


def _refused_field(names: tuple[str, ...]) -> str | None:
    """Why a field of the template's data is refused, or None."""
    if names[0] == "Var":
        return "(variables of 'var')"
    if names[0] == "Message" and len(names) == 1:
        return "(printed whole)"
    if names[0] == "Message" and names[1] not in MESSAGE_FIELDS or names[0] == "Question" and len(names) > 1 and \
            names[1] not in QUESTION_FIELDS:
        return f"(field {names[1]})"
    return None
