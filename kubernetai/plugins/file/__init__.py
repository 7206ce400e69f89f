# -*- test-case-name: tests.test_file -*-
"""
file: authoritative answers from RFC 1035 master files, as CoreDNS's file
plugin gives them.

C{file DBFILE [ZONES...] { reload DURATION; reload_by_mtime; fallthrough
[ZONES...] }}, once or more per server block; ZONES default to the block's,
each read from DBFILE with itself as the origin (dnspython's zone reader:
C{$ORIGIN}, C{$TTL}, C{$INCLUDE}, C{$GENERATE}).  C{upstream} is accepted
and ignored, as CoreDNS does.  A file that cannot be parsed, has no SOA or
holds NSEC3 records stops start-up; one that cannot be opened does too with
C{reload 0}, and otherwise is looked for again every C{reload} while its
zone answers SERVFAIL.

A query goes to the most specific of the zones holding its name (none: the
next plugin, REFUSED when none follows).  The answers (L{lookup}) are
CoreDNS's: authoritative, NS records in authority for positive answers, the
SOA for NXDOMAIN and NODATA, referrals with glue and without AA below a
zone cut, DNAME substitution, CNAMEs followed inside the zone and through
the server beyond it, RFC 4592 wildcards, RRSIGs and NSEC denials when the
query has the DO bit.  With C{fallthrough}, an NXDOMAIN (or empty
non-terminal) goes on to the next plugin.  AXFR and IXFR are REFUSED here:
the C{transfer} plugin, before us, serves them from our zones.

Every C{reload} (1m; 0: never) a thread looks at the file: when its mtime,
size or inode changed it parses it, and the new zone is swapped in on the reactor
thread by one assignment if its SOA serial differs from the one served
(with C{reload_by_mtime}, whatever the serial).  A file that fails to parse
is logged and the old zone keeps serving.

Where we differ from CoreDNS: records outside the zone are ignored (CoreDNS
keeps what the file has under any origin), and a file whose SOA is not at
the origin is refused; each RRset has one TTL, the least of its records',
and no duplicate records; a CNAME with other data at its name is a parse
error, and a parse error names the line after the faulty one (where
dnspython's reader stands); a file that is not a regular file or not UTF-8
is refused; the file is parsed again only when its mtime, size or inode
changed (a set-up, as on a Corefile reload, takes the zone already served
from an unchanged file); a dot inside a label (C{has\\.dot}) is not
matched (Twisted's names cannot tell it from two labels); a CNAME's target
outside the zone is asked of the server without the DO bit; no C{root}
plugin, so a relative DBFILE is relative to the daemon's directory; no
NOTIFY is sent.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Mapping

from twisted.application import service
from twisted.internet import task, threads
from twisted.logger import Logger
from twisted.names import dns
from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import EndOfChain, IHandler, Request, Response, ServerConfig
from kubernetai.corefile import Directive
from kubernetai.plugins.file.lookup import Chase, Found, Result, lookup, upstream_result
from kubernetai.plugins.file.zone import Unchanged, Zone, ZoneError, file_stat, read_zone, stat_key
from kubernetai.reuse import also_valid_while
from kubernetai.zones import Fallthrough, most_specific

log = Logger(namespace="kubernetai.plugins.file")

DEFAULT_RELOAD = 60.0

# The zones served, by (path, origin), while served: a set-up (the Corefile reloaded, another block naming the
# same file) takes the one whose file is unchanged instead of parsing it again on the reactor thread.
_served: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


@dataclass(frozen=True)
class Source:
    """Where one zone comes from and how often to look at its file again."""

    origin: str
    path: str
    reload: float = DEFAULT_RELOAD
    by_mtime: bool = False


@implementer(IHandler)
class File:
    """Answers from the block's zones; each zone replaced whole when its file is read again."""

    name = "file"
    next = None

    def __init__(self, zones: Mapping[str, Zone], fallthrough: Fallthrough | None) -> None:
        self.zones = MappingProxyType(dict(zones))
        self.fallthrough = fallthrough

    def replace(self, zone: Zone) -> None:
        """Serve C{zone} from now on in place of the one of its origin (on the reactor thread)."""
        self.zones = MappingProxyType({**self.zones, zone.origin: zone})

    def serve(self, request: Request):
        zones = self.zones
        origin = most_specific(request.name, zones)
        if origin is None:
            return Response(rcode=dns.EREFUSED) if isinstance(self.next, EndOfChain) else self.next.serve(request)
        if request.qtype in (dns.AXFR, dns.IXFR):
            return Response(rcode=dns.EREFUSED)
        zone = zones[origin]
        found = lookup(zone, request.name, request.qtype, request.dnssec_ok)
        if isinstance(found, Chase):
            return request.lookup(found.target, request.qtype).addCallbacks(
                lambda upstream: upstream_result(upstream.rcode, upstream.answers),
                lambda _failure: Found(Result.SERVER_FAILURE),
            ).addCallback(lambda upstream: self.respond(request, found.complete(zone, request.dnssec_ok, upstream)))

        def unchanged() -> bool:
            return self.zones is zones

        return self.respond(request, found, unchanged)

    def respond(self, request: Request, found: Found, valid_while=None):
        """The reply for C{found}, or the next plugin's for a miss that falls through (file.go's ServeDNS); the
        same while C{valid_while} holds (None: built anew for every query)."""
        if not found.answer and found.result in (Result.NAME_ERROR, Result.SUCCESS) \
                and self.fallthrough is not None and self.fallthrough.through(request.name):
            return also_valid_while(self.next.serve(request), valid_while)
        if found.result is Result.SERVER_FAILURE and not found.answer:
            return Response(rcode=dns.ESERVER, valid_while=valid_while)
        rcode = {Result.NAME_ERROR: dns.ENAME, Result.SERVER_FAILURE: dns.ESERVER}.get(found.result, dns.OK)
        authoritative = found.result is not Result.DELEGATION or bool(found.answer)
        return Response(rcode=rcode, answers=found.answer, authority=found.authority, additional=found.additional,
                        authoritative=authoritative, valid_while=valid_while)


class Reloader(service.Service):
    """Looks at each zone's file every C{reload} in a thread; a changed zone is swapped in on the reactor."""

    def __init__(self, handler: File, sources: list[Source], reactor) -> None:
        self.handler = handler
        self.reactor = reactor
        self.loops = []
        for source in sources:
            loop = task.LoopingCall(self.check, source)
            loop.clock = reactor
            self.loops.append((loop, source.reload))
        self.seen = {source.origin: self.handler.zones[source.origin].stat for source in sources}

    def startService(self) -> None:
        super().startService()
        for loop, interval in self.loops:
            loop.start(interval, now=False)

    def stopService(self):
        for loop, _ in self.loops:
            if loop.running:
                loop.stop()
        return super().stopService()

    def check(self, source: Source):
        """Read the file in a thread if it changed since last looked at; serve what it holds if that is new."""
        serial = -1 if source.by_mtime else self.handler.zones[source.origin].serial
        pool = self.reactor.getThreadPool()
        read = threads.deferToThreadPool(self.reactor, pool, reread, source, self.seen[source.origin], serial)
        read.addCallbacks(lambda result: self.reread(source, *result), lambda failure: self.failed(source, failure))
        return read

    def reread(self, source: Source, seen: tuple[int, int, int], zone: Zone | None, error: ZoneError | None) -> None:
        self.seen[source.origin] = seen
        if error is not None:
            log.error("Parsing zone {origin!r}: {error}", origin=source.origin, error=error)
        elif zone is not None:
            self.handler.replace(zone)
            _served[source.path, source.origin] = zone
            log.info("Successfully reloaded zone {origin!r} in {path!r} with {serial} SOA serial",
                     origin=source.origin, path=source.path, serial=zone.serial)

    def failed(self, source: Source, failure) -> None:
        if failure.check(OSError):
            log.error("Failed to open zone {origin!r} in {path!r}: {error}", origin=source.origin,
                      path=source.path, error=failure.value)
        else:
            log.failure("reading zone {origin!r} from {path!r} failed", failure, origin=source.origin,
                        path=source.path)


def reread(source: Source, seen: tuple[int, int, int] | None, serial: int):
    """The file's L{stat_key} now; its zone, if that changed from C{seen} and the SOA serial is not C{serial};
    why it cannot be served, if so (blocks; OSError when the file cannot be read)."""
    now = stat_key(os.stat(source.path))
    if now == seen:
        return now, None, None
    try:
        return now, read_zone(source.path, source.origin, serial), None
    except Unchanged:
        return now, None, None
    except ZoneError as err:
        return now, None, err


def setup(directives: list[Directive], config: ServerConfig) -> File:
    """C{file DBFILE [ZONES...] { ... }}, once or more per server block; reads every file now, as CoreDNS does."""
    server_zones = dict.fromkeys(address.zone for address in config.zones)
    sources: dict[str, Source] = {}
    zones: dict[str, Zone] = {}
    fallthrough = None
    for directive in directives:
        parsed, directive_fallthrough = parse_directive(directive, server_zones)
        fallthrough = directive_fallthrough or fallthrough
        for source in parsed:
            sources[source.origin] = source
            zones[source.origin] = first_read(directive, source)
        config.plan.append(describe(directive, parsed, directive_fallthrough))
    handler = File(zones, fallthrough)
    reloading = [source for source in sources.values() if source.reload]
    if reloading:
        config.services.append(Reloader(handler, reloading, config.reactor))
    return handler


def first_read(directive: Directive, source: Source) -> Zone:
    """The zone as its file holds it at set-up (the one served already if the file is unchanged since it was
    read); an empty zone (SERVFAIL) while a file to reload is missing."""
    served = _served.get((source.path, source.origin))
    if served is not None and served.stat == file_stat(source.path):
        return served
    try:
        zone = read_zone(source.path, source.origin)
    except ZoneError as err:
        raise options.error(directive, str(err)) from None
    except (OSError, ValueError) as err:  # ValueError: a NUL in the path, which Go calls an invalid argument
        reason = getattr(err, "strerror", None) or "invalid argument"
        message = f"open {source.path}: {reason[:1].lower()}{reason[1:]}"
        if not source.reload:
            raise options.error(directive, message) from None
        log.warn("Failed to open {message!r}: trying again in {reload:g}s", message=message, reload=source.reload)
        return Zone(source.origin, source.path)
    _served[source.path, source.origin] = zone
    return zone


def parse_directive(directive: Directive, server_zones) -> tuple[list[Source], Fallthrough | None]:
    """The zones of one C{file} directive and its fallthrough, refused with CoreDNS's words."""
    if not directive.args:
        raise options.error(directive, "Wrong argument count or unexpected line ending after 'file'")
    path, zone_args = directive.args[0], directive.args[1:]
    origins = options.zones(directive, zone_args, server_zones)
    found = options.parse_options(directive, FileOptions(), _OPTION_PARSERS)
    return [Source(origin, path, found.reload, found.by_mtime) for origin in origins], found.fallthrough


@dataclass(frozen=True)
class FileOptions:
    """What the options of one C{file} directive set."""

    reload: float = DEFAULT_RELOAD
    by_mtime: bool = False
    fallthrough: Fallthrough | None = None


def _reload(option: Directive, found: FileOptions) -> FileOptions:
    """C{reload DURATION}: a Go duration, 0 to look at the file never again."""
    if not option.args:
        raise options.error(option, "reload duration value is expected")
    text = option.args[0]
    body = text[1:] if text.startswith(("+", "-")) else text
    seconds = 0.0 if body == "0" else options.parse_duration(option, body)
    if text.startswith("-") and seconds:
        raise options.error(option, f"reload duration must not be negative: {text!r}")
    return replace(found, reload=seconds)


def _fallthrough(option: Directive, found: FileOptions) -> FileOptions:
    return replace(found, fallthrough=Fallthrough(options.zones(option, option.args, ())))


_OPTION_PARSERS: dict[str, options.OptionParser] = {
    "reload": _reload,
    "reload_by_mtime": options.flag("by_mtime"),
    "fallthrough": _fallthrough,
    # Accepted and ignored, as CoreDNS does since upstream became the default.
    "upstream": lambda option, found: found,
}


def describe(directive: Directive, sources: list[Source], fallthrough: Fallthrough | None) -> str:
    """The C{--validate} plan line of one C{file} directive."""
    text = f"file {directive.args[0]} {' '.join(source.origin for source in sources)}"
    reload = sources[0].reload if sources else 0
    text += f" reload every {reload:g}s" if reload else " no reload"
    text += " (by mtime)" if reload and sources[0].by_mtime else ""
    if fallthrough is not None:
        text += " fallthrough " + (" ".join(fallthrough.zones) or ".")
    return text
