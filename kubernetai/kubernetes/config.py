# -*- test-case-name: tests.test_kubernetes_config -*-
"""
A stanza's configuration: one C{kubernetai ZONES... { ... }} (or
C{kubernetes}) directive parsed and checked as CoreDNS's kubernetes plugin
parses it (plugin/kubernetes/setup.go, ParseStanza); its C{labels} and
C{namespace_labels} take label selectors (L{kubernetai.kubernetes.selector}).

Pure: a L{Directive} in, a frozen L{StanzaConfig} out, or a CorefileError at
the line of the option that is wrong.  Nothing here reads a file or talks to
the API server.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Sequence
from urllib.parse import urlsplit

from kubernetai import options
from kubernetai.corefile import Directive
from kubernetai.kubernetes.selector import format_label_selector, parse_label_selector
from kubernetai.zones import Fallthrough, in_zones, parse_key

POD_MODES = ("disabled", "verified", "insecure")
LOADBALANCER, EXTERNALIPS = "loadbalancer", "externalips"
CLUSTERIP, NXDOMAIN = "clusterip", "nxdomain"
_GO_INT = (-(2**63), 2**63 - 1)
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_REVERSE_SUFFIXES = ("in-addr.arpa.", "ip6.arpa.")

_STANZA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class ExternalNames(NamedTuple):
    """C{external_names}: where a service's name takes its addresses from, in order, and what it answers
    when none of them has any (C{clusterip} or C{nxdomain})."""

    sources: tuple[str, ...]
    fallback: str = NXDOMAIN


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
    # Ours: answer services' names with their LoadBalancer ingress or external IPs.  None: off.
    external_names: ExternalNames | None = None
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


def parse_stanza(directive: Directive, server_zones: Sequence[str]) -> StanzaConfig:
    """The configuration in one C{kubernetai}/C{kubernetes} directive of a block serving C{server_zones}."""
    zones = _zones(directive, directive.args) if directive.args else tuple(server_zones)
    primary = next((zone for zone in zones if not _is_reverse(zone)), None)
    if primary is None:
        raise options.error(directive, "non-reverse zone name must be used")
    config = options.parse_options(directive, StanzaConfig(zones=zones, primary_zone=primary), _OPTION_PARSERS)
    _cross_check(directive, config)
    return config


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




def _count(field: str) -> options.OptionParser:
    """An option with one integer argument, at least 0 (C{apiserver_burst}, C{apiserver_max_inflight})."""

    def parse(option: Directive, config: StanzaConfig) -> StanzaConfig:
        (text,) = options.arg_count(option, 1, 1)
        value = options.parse_int(option, text, *_GO_INT)
        if value < 0:
            raise options.error(option, f"{field} must be >= 0: {value}")
        return replace(config, **{field: value})

    return parse


def _selector(field: str, what: str) -> options.OptionParser:
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


def _external_names(option: Directive, config: StanzaConfig) -> StanzaConfig:
    """C{external_names SOURCE... [fallback clusterip|nxdomain]}: ours, not CoreDNS's."""
    args = list(options.arg_count(option, 1, None))
    fallback = NXDOMAIN
    if "fallback" in args:
        at = args.index("fallback")
        rest = args[at + 1:]
        if len(rest) != 1 or rest[0] not in (CLUSTERIP, NXDOMAIN):
            raise options.error(option, f"fallback takes one of {CLUSTERIP}, {NXDOMAIN}: "
                                        f"{' '.join(rest) or 'nothing given'}")
        fallback, args = rest[0], args[:at]
    for source in args:
        if source not in (LOADBALANCER, EXTERNALIPS):
            raise options.error(option, f"unknown external_names source {source!r}: expected "
                                        f"{LOADBALANCER} or {EXTERNALIPS}")
    if not args:
        raise options.error(option, f"external_names needs a source: {LOADBALANCER} or {EXTERNALIPS}")
    if len(set(args)) != len(args):
        raise options.error(option, f"external_names names a source twice: {' '.join(args)}")
    return replace(config, external_names=ExternalNames(tuple(args), fallback))


def _multicluster(option: Directive, config: StanzaConfig) -> StanzaConfig:
    # Without arguments CoreDNS sets no multicluster zones; a later line replaces an earlier one.
    return replace(config, multicluster=_zones(option, option.args))


_OPTION_PARSERS: dict[str, options.OptionParser] = {
    "endpoint": _endpoint,
    "tls": _tls,
    "kubeconfig": _kubeconfig,
    "namespaces": _namespaces,
    "namespace_labels": _selector("namespace_labels", "namespace_label"),
    "labels": _selector("labels", "label"),
    "pods": _pods,
    "endpoint_pod_names": options.flag("endpoint_pod_names"),
    "ttl": _ttl,
    "noendpoints": options.flag("noendpoints"),
    "fallthrough": _fallthrough,
    "ignore": _ignore,
    "startup_timeout": _startup_timeout,
    "apiserver_qps": _apiserver_qps,
    "apiserver_burst": _count("apiserver_burst"),
    "apiserver_max_inflight": _count("apiserver_max_inflight"),
    "multicluster": _multicluster,
    "zonal": options.flag("zonal"),
    "failover": _failover,
    "name": _name,
    "external_names": _external_names,
    "merge": _merge,
}


