# -*- test-case-name: tests.test_kubernetes_config -*-
"""
A stanza's configuration: one C{kubernetai ZONES... { ... }} (or
C{kubernetes}) directive parsed and checked as CoreDNS's kubernetes plugin
parses it (plugin/kubernetes/setup.go, ParseStanza), and the Kubernetes
label-selector syntax its C{labels} and C{namespace_labels} options take
(k8s.io/apimachinery/pkg/labels).

Pure: a L{Directive} in, a frozen L{StanzaConfig} out, or a CorefileError at
the line of the option that is wrong.  Nothing here reads a file or talks to
the API server.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from kubernetai import options
from kubernetai.corefile import Directive, parse_key
from kubernetai.zones import Fallthrough, in_zones

POD_MODES = ("disabled", "verified", "insecure")
_GO_INT = (-(2**63), 2**63 - 1)
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_REVERSE_SUFFIXES = ("in-addr.arpa.", "ip6.arpa.")

# Label-selector operators, as Requirement.operator holds them ("==" is read as "=").
EQUALS, NOT_EQUALS, IN, NOT_IN, EXISTS, DOES_NOT_EXIST = "=", "!=", "in", "notin", "exists", "!"

_IDENTIFIER, _END = "identifier", "end of string"
_SELECTOR_TOKEN = re.compile(r"[ \t\r\n]*(?:(?P<symbol>!=|==|[=!(),<>])|(?P<word>[^ \t\r\n=!(),<>]+))?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_STANZA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME_RULE = (
    "alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character"
)


@dataclass(frozen=True)
class StanzaConfig:
    """One stanza's options, with CoreDNS's defaults.

    Which API server it talks to, as CoreDNS decides: C{kubeconfig} when
    given (then C{endpoint} and C{tls} are ignored), else C{endpoint} with
    C{tls}'s files, else the in-cluster service account (then C{tls} is
    ignored).  CoreDNS accepts all three together, and so do we.
    """

    zones: tuple[str, ...]
    primary_zone: str
    endpoint: str | None = None
    tls: tuple[str, str, str] | None = None
    kubeconfig: tuple[str, str | None] | None = None
    namespaces: frozenset[str] = frozenset()
    # Label selectors in canonical form (format_label_selector), as CoreDNS sends them.
    namespace_labels: str | None = None
    labels: str | None = None
    pods: str = "disabled"
    endpoint_pod_names: bool = False
    ttl: int = 5
    noendpoints: bool = False
    fallthrough: Fallthrough | None = None
    ignore_empty_service: bool = False
    startup_timeout: float = 5.0
    # 0 keeps client-go's defaults, as CoreDNS does: 5 requests a second with
    # bursts of 10 (rest.DefaultQPS, rest.DefaultBurst), not unlimited.
    apiserver_qps: float = 0.0
    apiserver_burst: int = 0
    # 0 is unlimited: CoreDNS adds its in-flight limit only when this is above 0.
    apiserver_max_inflight: int = 0
    multicluster: tuple[str, ...] = ()
    zonal: bool = False
    # Ours, not CoreDNS's: hand queries on instead of SERVFAIL while the stanza has not synced, and,
    # with a duration, while its watches have been down longer than that.  None: off.
    failover: float | None = None
    # Ours: what metrics, /ready and the logs call the stanza instead of "#N ZONES".  Not compared:
    # renaming a stanza keeps its watches across a reload.
    name: str | None = field(default=None, compare=False)
    # Ours: the group whose stanzas of one server block answer together (kubernetai.kubernetes.merge).
    # Not compared: it changes no watch.
    merge: str | None = field(default=None, compare=False)

    @property
    def watches_pods(self) -> bool:
        """Whether answers need Pods: C{pods verified} or C{endpoint_pod_names}."""
        return self.pods == "verified" or self.endpoint_pod_names

    @property
    def watches_endpoints(self) -> bool:
        """Whether answers need EndpointSlices: unless C{noendpoints}."""
        return not self.noendpoints


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector: a label C{key}, an operator, and the values it compares with."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with C{labels} satisfies this clause."""
        if self.operator == EXISTS:
            return self.key in labels
        if self.operator == DOES_NOT_EXIST:
            return self.key not in labels
        value = labels.get(self.key)
        if self.operator in (EQUALS, IN):
            return value is not None and value in self.values
        return value is None or value not in self.values

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        if self.operator in (IN, NOT_IN):
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        return f"{self.key}{self.operator}{self.values[0]}"


def parse_stanza(directive: Directive, server_zones: Sequence[str]) -> StanzaConfig:
    """The configuration in one C{kubernetai}/C{kubernetes} directive of a block serving C{server_zones}."""
    zones = _zones(directive, directive.args) if directive.args else tuple(server_zones)
    primary = next((zone for zone in zones if not _is_reverse(zone)), None)
    if primary is None:
        raise options.error(directive, "non-reverse zone name must be used")
    config = StanzaConfig(zones=zones, primary_zone=primary)
    for option in directive.block:
        parse = _OPTION_PARSERS.get(option.name)
        if parse is None:
            raise options.unknown(option, "property", _OPTION_PARSERS)
        options.no_block(option)
        config = parse(option, config)
    _cross_check(directive, config)
    return config


def parse_label_selector(text: str) -> tuple[Requirement, ...]:
    """The clauses of Kubernetes label selector C{text}, sorted by key; C{ValueError} says what is wrong."""
    requirements = _SelectorParser(text).selector()
    return tuple(sorted(requirements, key=lambda requirement: requirement.key))


def format_label_selector(requirements: Iterable[Requirement]) -> str:
    """C{requirements} as one canonical selector string, as the API server's C{labelSelector} takes it."""
    return ",".join(str(requirement) for requirement in requirements)


def label_selector_matches(requirements: Iterable[Requirement], labels: Mapping[str, str]) -> bool:
    """Whether an object with C{labels} satisfies every clause; no clauses select everything."""
    return all(requirement.matches(labels) for requirement in requirements)


def _is_reverse(zone: str) -> bool:
    # CoreDNS's dnsutil.IsReverse misses the bare in-addr.arpa. and ip6.arpa.
    # (it looks for ".in-addr.arpa."); they are reverse zones all the same.
    return in_zones(zone, _REVERSE_SUFFIXES)


def _zones(option: Directive, args: Sequence[str]) -> tuple[str, ...]:
    """Zone arguments read as CoreDNS reads them (dns://, a port, a CIDR); a bad one is an error."""
    zones: list[str] = []
    for arg in args:
        try:
            zones += [address.zone for address in parse_key(arg)]
        except ValueError:
            # CoreDNS drops such an argument silently; a zone that vanished would be a surprise.
            raise options.error(
                option, f"invalid zone {arg!r}: expected a domain name or a network such as 10.0.0.0/24"
            ) from None
    return tuple(zones)


def _cross_check(directive: Directive, config: StanzaConfig) -> None:
    """The checks CoreDNS makes once the whole block is read, at the later option involved."""
    if config.namespaces and config.namespace_labels is not None:
        raise options.error(
            _last(directive, "namespaces", "namespace_labels"),
            "namespaces and namespace_labels cannot both be set",
        )
    for zone in config.multicluster:
        if zone not in config.zones:
            raise options.error(
                _last(directive, "multicluster"),
                f"is not authoritative for the multicluster zone {zone} "
                f"(authoritative zones: {' '.join(config.zones)})",
            )
    if config.zonal and config.noendpoints:
        raise options.error(
            _last(directive, "zonal", "noendpoints"), "zonal requires the endpoint cache; remove noendpoints"
        )


def _last(directive: Directive, *names: str) -> Directive:
    return [option for option in directive.block if option.name in names][-1]


_OptionParser = Callable[[Directive, StanzaConfig], StanzaConfig]


def _flag(field: str) -> _OptionParser:
    """An option without arguments that sets C{field}."""

    def parse(option: Directive, config: StanzaConfig) -> StanzaConfig:
        options.arg_count(option, 0, 0)
        return replace(config, **{field: True})

    return parse


def _count(field: str) -> _OptionParser:
    """An option with one integer argument, at least 0 (C{apiserver_burst}, C{apiserver_max_inflight})."""

    def parse(option: Directive, config: StanzaConfig) -> StanzaConfig:
        (text,) = options.arg_count(option, 1, 1)
        value = options.parse_int(option, text, *_GO_INT)
        if value < 0:
            raise options.error(option, f"{field} must be >= 0: {value}")
        return replace(config, **{field: value})

    return parse


def _selector(field: str, what: str) -> _OptionParser:
    """An option whose arguments, joined by spaces, are a label selector (C{labels}, C{namespace_labels})."""

    # CoreDNS refuses "!=" here (its LabelSelector conversion has no such
    # operator); the API server takes it, and the spec asks for full syntax.
    def parse(option: Directive, config: StanzaConfig) -> StanzaConfig:
        text = " ".join(options.arg_count(option, 1, None))
        try:
            requirements = parse_label_selector(text)
        except ValueError as err:
            raise options.error(option, f"unable to parse {what} selector value: {text!r}: {err}") from None
        return replace(config, **{field: format_label_selector(requirements)})

    return parse


def _endpoint(option: Directive, config: StanzaConfig) -> StanzaConfig:
    # Several URLs are deprecated in CoreDNS, which uses the first and ignores the rest.
    url = options.arg_count(option, 1, None)[0]
    if not _is_api_url(url):
        raise options.error(option, f"invalid endpoint {url!r}: expected a URL such as https://10.0.0.1:6443")
    return replace(config, endpoint=url)


def _is_api_url(url: str) -> bool:
    # Stricter than client-go, which takes a bare "host:port" and guesses the scheme.
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        return False


def _tls(option: Directive, config: StanzaConfig) -> StanzaConfig:
    cert, key, ca_cert = options.arg_count(option, 3, 3)
    return replace(config, tls=(cert, key, ca_cert))


def _kubeconfig(option: Directive, config: StanzaConfig) -> StanzaConfig:
    args = options.arg_count(option, 1, 2)
    context = args[1] if len(args) == 2 else None
    # "~/.kube/config" means what it means to kubectl; CoreDNS leaves it to the shell.
    return replace(config, kubeconfig=(os.path.expanduser(args[0]), context))


def _namespaces(option: Directive, config: StanzaConfig) -> StanzaConfig:
    # Repeated namespaces lines add up, as in CoreDNS.
    names = options.arg_count(option, 1, None)
    return replace(config, namespaces=config.namespaces | frozenset(names))


def _pods(option: Directive, config: StanzaConfig) -> StanzaConfig:
    (mode,) = options.arg_count(option, 1, 1)
    if mode not in POD_MODES:
        raise options.error(option, f"wrong value for pods: {mode}, must be one of: {', '.join(POD_MODES)}")
    return replace(config, pods=mode)


def _ttl(option: Directive, config: StanzaConfig) -> StanzaConfig:
    # CoreDNS reads the first argument of ttl and startup_timeout and ignores any others.
    ttl = options.parse_int(option, options.arg_count(option, 1, None)[0], *_GO_INT)
    if not 0 <= ttl <= 3600:
        raise options.error(option, f"ttl must be in range [0, 3600]: {ttl}")
    return replace(config, ttl=ttl)


def _fallthrough(option: Directive, config: StanzaConfig) -> StanzaConfig:
    return replace(config, fallthrough=Fallthrough(_zones(option, option.args)))


def _ignore(option: Directive, config: StanzaConfig) -> StanzaConfig:
    # CoreDNS accepts a bare "ignore" (and ignores it) and reads only the first argument.
    if not option.args:
        return config
    value = option.args[0]
    if value != "empty_service":
        raise options.error(option, f"unable to parse ignore value: {value!r}: expected empty_service")
    return replace(config, ignore_empty_service=True)


def _startup_timeout(option: Directive, config: StanzaConfig) -> StanzaConfig:
    text = options.arg_count(option, 1, None)[0]
    seconds = options.parse_duration(option, text)
    if seconds <= 0:
        # CoreDNS panics on it (time.NewTicker of a non-positive interval).
        raise options.error(option, f"startup_timeout must be greater than 0: {text}")
    return replace(config, startup_timeout=seconds)


def _apiserver_qps(option: Directive, config: StanzaConfig) -> StanzaConfig:
    (text,) = options.arg_count(option, 1, 1)
    if not _DECIMAL.fullmatch(text) or not math.isfinite(float(text)):
        raise options.error(option, f"invalid apiserver_qps {text!r}: expected a number")
    qps = float(text)
    if qps < 0:
        raise options.error(option, f"apiserver_qps must be >= 0: {text}")
    return replace(config, apiserver_qps=qps)


def _failover(option: Directive, config: StanzaConfig) -> StanzaConfig:
    """C{failover [STALE]}: ours, not CoreDNS's; math.inf when only an unsynced stanza hands on."""
    args = options.arg_count(option, 0, 1)
    stale = options.parse_duration(option, args[0]) if args else math.inf
    if stale <= 0:
        raise options.error(option, f"failover duration must be greater than 0: {args[0]}")
    return replace(config, failover=stale)


def _name(option: Directive, config: StanzaConfig) -> StanzaConfig:
    """C{name NAME}: ours, not CoreDNS's; a label safe in metrics, logs and /ready's comma-separated list."""
    return replace(config, name=_label_argument(option, "stanza name"))


def _label_argument(option: Directive, what: str) -> str:
    """The one argument of C{option}, a label as C{name} takes it; an error calls it C{what}."""
    (label,) = options.arg_count(option, 1, 1)
    if not _STANZA_NAME.fullmatch(label):
        raise options.error(option, f"invalid {what} {label!r}: expected at most 63 letters, digits, "
                                    "'.', '_' or '-', starting with a letter or digit")
    return label


def _merge(option: Directive, config: StanzaConfig) -> StanzaConfig:
    """C{merge GROUP}: ours; the stanzas of a block naming one GROUP answer together."""
    return replace(config, merge=_label_argument(option, "merge group"))


def _multicluster(option: Directive, config: StanzaConfig) -> StanzaConfig:
    # Without arguments CoreDNS sets no multicluster zones; a later line replaces an earlier one.
    return replace(config, multicluster=_zones(option, option.args))


_OPTION_PARSERS: dict[str, _OptionParser] = {
    "endpoint": _endpoint,
    "tls": _tls,
    "kubeconfig": _kubeconfig,
    "namespaces": _namespaces,
    "namespace_labels": _selector("namespace_labels", "namespace_label"),
    "labels": _selector("labels", "label"),
    "pods": _pods,
    "endpoint_pod_names": _flag("endpoint_pod_names"),
    "ttl": _ttl,
    "noendpoints": _flag("noendpoints"),
    "fallthrough": _fallthrough,
    "ignore": _ignore,
    "startup_timeout": _startup_timeout,
    "apiserver_qps": _apiserver_qps,
    "apiserver_burst": _count("apiserver_burst"),
    "apiserver_max_inflight": _count("apiserver_max_inflight"),
    "multicluster": _multicluster,
    "zonal": _flag("zonal"),
    "failover": _failover,
    "name": _name,
    "merge": _merge,
}


def _selector_tokens(text: str) -> list[tuple[str, str]]:
    """C{text} as (kind, literal) pairs, as apimachinery's lexer splits it, ending with the end of string."""
    tokens = []
    position = 0
    while True:
        match = _SELECTOR_TOKEN.match(text, position)
        position = match.end()
        if match["symbol"]:
            tokens.append((match["symbol"], match["symbol"]))
        elif match["word"]:
            word = match["word"]
            tokens.append((word if word in (IN, NOT_IN) else _IDENTIFIER, word))
        else:
            tokens.append((_END, ""))
            return tokens


class _SelectorParser:
    """apimachinery's label-selector grammar (labels.Parse), less the C{<} and C{>} that CoreDNS refuses."""

    def __init__(self, text: str) -> None:
        self.tokens = _selector_tokens(text)
        self.position = 0

    def peek(self, values: bool = True) -> tuple[str, str]:
        # Where a value may stand, "in" and "notin" are values, not operators.
        kind, literal = self.tokens[self.position]
        return (_IDENTIFIER if values and kind in (IN, NOT_IN) else kind), literal

    def take(self, values: bool = True) -> tuple[str, str]:
        token = self.peek(values)
        self.position = min(self.position + 1, len(self.tokens) - 1)
        return token

    def selector(self) -> list[Requirement]:
        kind, literal = self.peek()
        if kind == _END:
            return []
        requirements = []
        expected = "!, identifier, or 'end of string'"
        while True:
            if kind not in (_IDENTIFIER, "!"):
                raise ValueError(f"found {literal!r}, expected: {expected}")
            requirements.append(self.requirement())
            kind, literal = self.take()
            if kind == _END:
                return requirements
            if kind != ",":
                raise ValueError(f"found {literal!r}, expected: ',' or 'end of string'")
            kind, literal = self.peek()
            expected = "identifier after ','"

    def requirement(self) -> Requirement:
        operator = None
        kind, key = self.take()
        if kind == "!":
            operator = DOES_NOT_EXIST
            kind, key = self.take()
        if kind != _IDENTIFIER:
            raise ValueError(f"found {key!r}, expected: identifier")
        _check_label_key(key)
        if operator is None and self.peek()[0] in (_END, ","):
            operator = EXISTS
        if operator is not None:
            return Requirement(key, operator)
        operator = self.operator()
        values = self.value_set() if operator in (IN, NOT_IN) else (self.exact_value(),)
        for value in values:
            _check_label_value(key, value)
        return Requirement(key, operator, values)

    def operator(self) -> str:
        kind, literal = self.take(values=False)
        if kind in ("<", ">"):
            # labels.Parse knows them, but a LabelSelector (so CoreDNS) does not.
            raise ValueError(f"{literal!r} isn't supported in label selectors")
        if kind not in (IN, NOT_IN, "=", "==", "!="):
            raise ValueError(f"found {literal!r}, expected: in, notin, =, ==, !=")
        return EQUALS if kind == "==" else kind

    def value_set(self) -> tuple[str, ...]:
        """C{(a,b,...)}: values may be empty (C{()}, C{(a,)}, C{(a,,b)} hold C{""})."""
        kind, literal = self.take()
        if kind != "(":
            raise ValueError(f"found {literal!r}, expected: '('")
        values = set()
        while True:
            kind, literal = self.peek()
            if kind == _IDENTIFIER:
                values.add(literal)
                self.take()
                kind, literal = self.peek()
            else:
                values.add("")
            self.take()
            if kind == ")":
                return tuple(sorted(values))
            if kind != ",":
                raise ValueError(f"found {literal!r}, expected: ',', ')' or identifier")

    def exact_value(self) -> str:
        kind, literal = self.peek()
        if kind in (_END, ","):
            return ""
        self.take()
        if kind != _IDENTIFIER:
            raise ValueError(f"found {literal!r}, expected: identifier")
        return literal


def _check_label_key(key: str) -> None:
    """Refuse a key that is not C{[DNS-subdomain/]name}, as apimachinery's IsLabelKey does."""
    prefix, slash, name = key.rpartition("/")
    if "/" in prefix:
        problem = "expected a name with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
    elif slash and not prefix:
        problem = "prefix part must be non-empty"
    elif len(prefix) > 253:
        problem = "prefix part must be no more than 253 characters"
    elif prefix and not _DNS_SUBDOMAIN.fullmatch(prefix):
        problem = (
            "prefix part must be a lowercase RFC 1123 subdomain: lower case alphanumeric characters, "
            "'-' or '.', starting and ending with an alphanumeric character (e.g. 'example.com')"
        )
    elif not name:
        problem = "name part must be non-empty"
    elif len(name) > 63:
        problem = "name part must be no more than 63 characters"
    elif not _LABEL_NAME.fullmatch(name):
        problem = f"name part must consist of {_LABEL_NAME_RULE} (e.g. 'MyName' or 'my.name' or '123-abc')"
    else:
        return
    raise ValueError(f"invalid label key {key!r}: {problem}")


def _check_label_value(key: str, value: str) -> None:
    """Refuse a value that is not empty or a label name of at most 63 characters."""
    if len(value) > 63:
        problem = "must be no more than 63 characters"
    elif value and not _LABEL_NAME.fullmatch(value):
        problem = f"must be empty or consist of {_LABEL_NAME_RULE}"
    else:
        return
    raise ValueError(f"invalid value {value!r} for label {key!r}: {problem}")
