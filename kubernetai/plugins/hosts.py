# -*- test-case-name: tests.test_hosts -*-
"""
hosts: A, AAAA and PTR answers from an /etc/hosts-style file and from lines
inlined in the Corefile, as CoreDNS's hosts plugin gives them.

C{hosts [FILE [ZONES...]] { [INLINE]; ttl SECONDS; no_reverse; reload
DURATION; fallthrough [ZONES...]; fallthrough_unsupported }}, once per
server block.  FILE defaults to /etc/hosts, ZONES to the block's; only names
in ZONES are read.  A line before C{fallthrough} that is no option is an
inline entry; after it, it is an error.  A leftmost C{*} label matches one
label, and makes no PTR record.

Answers are authoritative, with the TTL (3600 by default) and the question's
case.  A name we have, asked for another type, is NODATA (no SOA: there is
none).  A name we lack in our zones goes to the next plugin with
C{fallthrough} for it, and is otherwise SERVFAIL, as CoreDNS answers: no SOA
to deny it with.  PTR questions are answered in any zone, and a PTR miss
always goes on.  C{fallthrough_unsupported} sends types other than A, AAAA
and PTR on as well, names we have included.

The file is read when the block is set up, and every C{reload} (5s; 0: never)
a thread stats it and reads it again when its mtime or size changed; the
handler then answers from the new table, published by one assignment.  A
file that cannot be read leaves the table as it was.

Where we differ from CoreDNS: no C{root} plugin, so a relative FILE is
relative to the daemon's directory; no metrics (C{coredns_hosts_entries},
C{coredns_hosts_reload_timestamp_seconds}); C{no_reverse} with arguments is
an error (CoreDNS reads them as the next line); names that are not ASCII are
skipped.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from twisted.application import service
from twisted.internet import defer, task, threads
from twisted.logger import Logger
from twisted.names import dns
from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import IHandler, Request, Response, ServerConfig
from kubernetai.corefile import CorefileError, Directive
from kubernetai.kubernetes.names import reverse_address
from kubernetai.kubernetes.records import address_record, record
from kubernetai.reuse import also_valid_while
from kubernetai.zones import Fallthrough, in_zones

log = Logger(namespace="kubernetai.plugins.hosts")

DEFAULT_PATH = "/etc/hosts"
DEFAULT_TTL = 3600
DEFAULT_RELOAD = 5.0
_GO_INT = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class HostsMap:
    """One source's entries: addresses by name and family (wildcards apart), names by address."""

    names4: Mapping[str, tuple[str, ...]]
    names6: Mapping[str, tuple[str, ...]]
    wild4: Mapping[str, tuple[str, ...]]
    wild6: Mapping[str, tuple[str, ...]]
    addresses: Mapping[str, tuple[str, ...]]

    def lookup(self, name: str, version: int) -> tuple[str, ...]:
        """The addresses of C{name} (lower case, with the final dot) of IP C{version}, a wildcard's if none."""
        names, wild = (self.names4, self.wild4) if version == 4 else (self.names6, self.wild6)
        found = names.get(name)
        if found is not None:
            return found
        pattern = wildcard_of(name)
        return wild.get(pattern, ()) if pattern else ()


EMPTY = HostsMap(*(MappingProxyType({}) for _ in range(5)))


@dataclass(frozen=True)
class Loaded:
    """The file's entries and the mtime and size they were read at (None: never read)."""

    hosts: HostsMap = EMPTY
    mtime: int | None = None
    size: int | None = None


@dataclass(frozen=True)
class HostsConfig:
    """One C{hosts} directive, with CoreDNS's defaults."""

    path: str
    zones: tuple[str, ...]
    inline: tuple[str, ...] = ()
    ttl: int = DEFAULT_TTL
    reverse: bool = True
    reload: float = DEFAULT_RELOAD
    fallthrough: Fallthrough | None = None
    fallthrough_unsupported: bool = False

    def describe(self) -> str:
        """The C{--validate} plan line."""
        text = f"hosts {self.path} {' '.join(self.zones)}"
        if self.inline:
            text += f" + {len(self.inline)} inline line(s)"
        text += f" ttl {self.ttl}" + ("" if self.reverse else " no_reverse")
        text += f" reload every {self.reload:g}s" if self.reload else " no reload"
        if self.fallthrough is not None:
            text += " fallthrough " + (" ".join(self.fallthrough.zones) or ".")
            text += " (unsupported types too)" if self.fallthrough_unsupported else ""
        return text


def parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP of a hosts line's first field (an IPv6 zone dropped, IPv4-mapped read as IPv4), None if none."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def normalize_name(text: str) -> str:
    """A host name as we key it: lower case, with the final dot."""
    name = text.lower()
    return name if name.endswith(".") else name + "."


def wildcard_of(name: str) -> str | None:
    """C{name} with its leftmost label replaced by C{*}; None for a name of one label."""
    labels = name.split(".", 1)
    if len(labels) < 2 or not labels[1]:
        return None
    return "*." + labels[1]


def parse_hosts(text: str, zones: tuple[str, ...], reverse: bool) -> HostsMap:
    """The entries of hosts-file C{text} whose names are in C{zones}; PTR entries too when C{reverse}."""
    tables: tuple[dict[str, list[str]], ...] = ({}, {}, {}, {}, {})
    names4, names6, wild4, wild6, addresses = tables
    for line in text.split("\n"):
        fields = line.split("#", 1)[0].split()
        address = parse_address(fields[0]) if len(fields) >= 2 else None
        if address is None:
            continue
        ip = str(address)
        for field in fields[1:]:
            name = normalize_name(field)
            if not name.isascii() or not in_zones(name, zones):
                continue
            if name.startswith("*."):
                (wild4 if address.version == 4 else wild6).setdefault(name, []).append(ip)
                continue
            (names4 if address.version == 4 else names6).setdefault(name, []).append(ip)
            if reverse:
                addresses.setdefault(ip, []).append(name)
    return HostsMap(*(MappingProxyType({key: tuple(values) for key, values in table.items()}) for table in tables))


def ptr_targets(hosts: HostsMap, name: str) -> tuple[str, ...]:
    """The names of the address reverse name C{name} stands for (none when it stands for none)."""
    address = reverse_address(name)
    return hosts.addresses.get(str(parse_address(address)), ()) if address is not None else ()


def read_hosts(path: str, previous: Loaded, zones: tuple[str, ...], reverse: bool) -> Loaded:
    """The file's entries: C{previous} when its mtime and size did not change or it cannot be read (blocks)."""
    try:
        with open(path, "rb") as hosts_file:
            status = os.fstat(hosts_file.fileno())
            if (status.st_mtime_ns, status.st_size) == (previous.mtime, previous.size):
                return previous
            text = hosts_file.read().decode("utf-8", "replace")
    except OSError:
        return previous
    return Loaded(parse_hosts(text, zones, reverse), status.st_mtime_ns, status.st_size)


@implementer(IHandler)
class Hosts:
    """Answers from the file's table (replaced on reload) and the inline one."""

    name = "hosts"
    next = None

    def __init__(self, config: HostsConfig, inline: HostsMap, loaded: Loaded) -> None:
        self.config = config
        self.inline = inline
        self._loaded = loaded
        self.version = 0

    @property
    def loaded(self) -> Loaded:
        """What was last read from the file; setting another counts a new L{version}."""
        return self._loaded

    @loaded.setter
    def loaded(self, loaded: Loaded) -> None:
        if loaded is not self._loaded:
            self._loaded = loaded
            self.version += 1

    def serve(self, request: Request):
        name, qtype, config = request.name, request.qtype, self.config
        if qtype != dns.PTR and not in_zones(name, config.zones):
            return self.next.serve(request)
        loaded, version = self.loaded, self.version

        def unchanged() -> bool:
            return self.version == version

        sources = (loaded.hosts, self.inline)
        if qtype == dns.PTR:
            targets = [target for source in sources for target in ptr_targets(source, name)]
            if not targets:
                return also_valid_while(self.next.serve(request), unchanged)
            answers = [record(request.qname, dns.PTR, config.ttl,
                              dns.Record_PTR(target.rstrip(".").encode("ascii"), config.ttl))
                       for target in targets]
            return Response(answers=answers, authoritative=True, valid_while=unchanged)
        if qtype in (dns.A, dns.AAAA):
            ip_version = 4 if qtype == dns.A else 6
            answers = [address_record(request.qname, ip, config.ttl)
                       for source in sources for ip in source.lookup(name, ip_version)]
        elif config.fallthrough_unsupported and config.fallthrough.through(name):
            return self.next.serve(request)
        else:
            answers = []
        if not answers and not any(source.lookup(name, ip_version) for source in sources for ip_version in (4, 6)):
            if config.fallthrough is not None and config.fallthrough.through(name):
                return also_valid_while(self.next.serve(request), unchanged)
            return Response(rcode=dns.ESERVER, valid_while=unchanged)
        return Response(answers=answers, authoritative=True, valid_while=unchanged)


class Reloader(service.Service):
    """Reads the file again every C{reload}, in a thread, and hands the handler what it read."""

    def __init__(self, hosts: Hosts, reactor) -> None:
        self.hosts = hosts
        self.reactor = reactor
        self.loop = task.LoopingCall(self.check)
        self.loop.clock = reactor

    def startService(self) -> None:
        super().startService()
        self.loop.start(self.hosts.config.reload, now=False)

    def stopService(self):
        if self.loop.running:
            self.loop.stop()
        return super().stopService()

    def check(self) -> defer.Deferred:
        """Read the file if it changed; the handler's table is replaced by one assignment."""
        config = self.hosts.config
        read = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), read_hosts,
                                         config.path, self.hosts.loaded, config.zones, config.reverse)
        read.addCallback(lambda loaded: setattr(self.hosts, "loaded", loaded))
        read.addErrback(lambda failure: log.failure("reading {path} failed", failure, path=config.path))
        return read


def setup(directives: list[Directive], config: ServerConfig) -> Hosts:
    """C{hosts [FILE [ZONES...]] { ... }}, once per server block; reads the file now, as CoreDNS on startup."""
    directive = options.only_once(directives)
    server_zones = dict.fromkeys(address.zone for address in config.zones)
    parsed = parse_directive(directive, server_zones)
    inline = parse_hosts("\n".join(parsed.inline), parsed.zones, parsed.reverse)
    hosts = Hosts(parsed, inline, read_hosts(parsed.path, Loaded(), parsed.zones, parsed.reverse))
    if parsed.reload:
        config.services.append(Reloader(hosts, config.reactor))
    config.plan.append(parsed.describe())
    return hosts


def parse_directive(directive: Directive, server_zones) -> HostsConfig:
    """The options of one C{hosts} directive, refused with CoreDNS's words."""
    path, zone_args = DEFAULT_PATH, ()
    if directive.args:
        path, zone_args = directive.args[0], directive.args[1:]
        check_file(directive, path)
    fields: dict = {"zones": options.zones(directive, zone_args, server_zones)}
    inline: list[str] = []
    last_fallthrough_unsupported = None
    for option in directive.block:
        options.no_block(option)
        if option.name == "fallthrough":
            fields["fallthrough"] = Fallthrough(options.zones(option, option.args, ()))
        elif option.name == "fallthrough_unsupported":
            if option.args:
                raise options.error(option, f"Wrong argument count or unexpected line ending after "
                                            f"'{option.args[-1]}'")
            fields["fallthrough_unsupported"] = True
            last_fallthrough_unsupported = option
        elif option.name == "no_reverse":
            options.arg_count(option, 0, 0)
            fields["reverse"] = False
        elif option.name == "ttl":
            fields["ttl"] = parse_ttl(option)
        elif option.name == "reload":
            fields["reload"] = parse_reload(option)
        elif "fallthrough" not in fields:
            inline.append(" ".join((option.name,) + option.args))
        else:
            raise options.error(option, f"unknown property '{option.name}'")
    if last_fallthrough_unsupported is not None and "fallthrough" not in fields:
        raise options.error(last_fallthrough_unsupported, "fallthrough_unsupported requires fallthrough")
    return HostsConfig(path, inline=tuple(inline), **fields)


def check_file(directive: Directive, path: str) -> None:
    """Warn of a FILE that is missing or a directory; refuse one that cannot be looked at."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        log.warn("File does not exist: {path}", path=path)
        return
    except ValueError:  # a NUL in the path, which Go's stat calls an invalid argument
        raise options.error(directive,
                            f"unable to access hosts file '{path}': stat {path}: invalid argument") from None
    except OSError as err:
        reason = err.strerror or str(err)
        raise options.error(directive, f"unable to access hosts file '{path}': stat {path}: "
                                       f"{reason[:1].lower()}{reason[1:]}") from None
    if stat.S_ISDIR(mode):
        log.warn('Hosts file "{path}" is a directory', path=path)


def parse_ttl(option: Directive) -> int:
    """C{ttl SECONDS}: 1 to 65535; arguments after the first are ignored, as CoreDNS does."""
    if not option.args:
        raise options.error(option, "ttl needs a time in second")
    text = option.args[0]
    if not _GO_INT.fullmatch(text) or abs(int(text)) >= 2**63:
        raise options.error(option, "ttl needs a number of second")
    ttl = int(text)
    if not 0 < ttl <= 65535:
        raise options.error(option, "ttl provided is invalid")
    return ttl


def parse_reload(option: Directive) -> float:
    """C{reload DURATION}: a Go duration, 0 to disable."""
    if len(option.args) != 1:
        raise options.error(option, "reload needs a duration (zero seconds to disable)")
    text = option.args[0]
    body = text[1:] if text.startswith(("+", "-")) else text
    try:
        seconds = 0.0 if body == "0" else options.parse_duration(option, body)
    except CorefileError:
        raise options.error(option, f"invalid duration for reload '{text}'") from None
    if text.startswith("-") and seconds > 0:
        raise options.error(option, f"invalid negative duration for reload '{text}'")
    return seconds
