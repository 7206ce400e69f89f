# -*- test-case-name: tests.test_plugins -*-
"""
errors: logs the cause of every query the rest of the chain failed to
answer, once, as CoreDNS's errors plugin does (C{RCODE NAME TYPE: cause}),
and answers it with the failure's rcode.  C{consolidate DURATION REGEXP
[LEVEL] [show_first]} folds repeated causes into one line per period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from twisted.names import dns
from twisted.python.failure import Failure
from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import IHandler, PluginError, Request, Response, ServerConfig
from kubernetai.corefile import Directive
from kubernetai.dnsnames import type_name
from kubernetai.goregexp import GoRegexpError, compile_go

log = Logger(namespace="kubernetai.plugins.errors")

LEVELS = {"warning": LogLevel.warn, "error": LogLevel.error, "info": LogLevel.info, "debug": LogLevel.debug}
MAX_REGEXP_LENGTH = 10000


@dataclass
class Consolidation:
    """Errors matching C{pattern} counted over C{period} seconds and logged as one line."""

    period: float
    period_text: str
    pattern: re.Pattern
    level: LogLevel = LogLevel.error
    show_first: bool = False
    count: int = 0
    timer: Any = None


@implementer(IHandler)
class Errors:
    """Logs what went wrong further down the chain and turns it into an rcode."""

    name = "errors"
    next = None

    def __init__(self, consolidations: list[Consolidation], stacktrace: bool, reactor) -> None:
        self.consolidations = consolidations
        self.stacktrace = stacktrace
        self.reactor = reactor

    def serve(self, request: Request):
        try:
            result = self.next.serve(request)
        except Exception:
            return self._answer_failure(request, Failure())
        if isinstance(result, defer.Deferred):
            return result.addErrback(lambda failure: self._answer_failure(request, failure))
        return result

    def passes_alike(self, zone: str) -> bool:
        """Every query is handed on as it is, and only failures are answered here."""
        return True

    def _answer_failure(self, request: Request, failure: Failure) -> Response:
        rcode = failure.value.rcode if failure.check(PluginError) else dns.ESERVER
        cause = str(failure.value) if failure.check(PluginError) else repr(failure.value)
        self.report(request, rcode, cause, failure)
        return Response(rcode=rcode)

    def report(self, request: Request, rcode: int, cause: str, failure: Failure) -> None:
        """Log C{cause} once, or count it towards its consolidation."""
        level = LogLevel.error
        for consolidation in self.consolidations:
            if consolidation.pattern.search(cause):
                consolidation.count += 1
                if consolidation.count == 1:
                    consolidation.timer = self.reactor.callLater(
                        consolidation.period, self._log_consolidated, consolidation
                    )
                if consolidation.count > 1 or not consolidation.show_first:
                    return
                level = consolidation.level
                break
        qtype = type_name(request.qtype)
        line = f"{rcode} {request.name} {qtype}: {cause}"
        if self.stacktrace and not failure.check(PluginError):
            line += "\n" + failure.getTraceback()
        log.emit(level, "{line}", line=line)

    def flush(self) -> None:
        """Log what is being consolidated now, as on shutdown."""
        for consolidation in self.consolidations:
            if consolidation.timer is not None and consolidation.timer.active():
                consolidation.timer.cancel()
                self._log_consolidated(consolidation)

    def _log_consolidated(self, consolidation: Consolidation) -> None:
        count, consolidation.count = consolidation.count, 0
        if count > 1 or (count == 1 and not consolidation.show_first):
            log.emit(
                consolidation.level,
                "{count} errors like '{pattern}' occurred in last {period}",
                count=count,
                pattern=consolidation.pattern.pattern,
                period=consolidation.period_text,
            )


def setup(directives: list[Directive], config: ServerConfig) -> Errors:
    """C{errors { stacktrace; consolidate DURATION REGEXP [LEVEL] [show_first] }}."""
    directive = options.only_once(directives)
    options.arg_count(directive, 0, 0)
    consolidations = []
    stacktrace = False
    for option in directive.block:
        if option.name == "stacktrace":
            options.arg_count(option, 0, 0)
            stacktrace = True
        elif option.name == "consolidate":
            consolidations.append(parse_consolidate(option))
        else:
            raise options.unknown(option, "option", ("stacktrace", "consolidate"))
    config.plan.append("errors")
    errors = Errors(consolidations, stacktrace, config.reactor)
    config.services.append(FlushOnStop(errors))
    return errors


class FlushOnStop(service.Service):
    """Logs the consolidated errors still pending when the daemon stops."""

    def __init__(self, errors: Errors) -> None:
        self.errors = errors

    def stopService(self):
        self.errors.flush()
        return super().stopService()


def parse_consolidate(option: Directive) -> Consolidation:
    """C{consolidate DURATION REGEXP [LEVEL] [show_first]}."""
    args = options.arg_count(option, 2, 4)
    period = options.parse_duration(option, args[0])
    if len(args[1]) > MAX_REGEXP_LENGTH:
        raise options.error(option, f"regex pattern too long: {len(args[1])} > {MAX_REGEXP_LENGTH}")
    try:
        pattern = compile_go(args[1])
    except GoRegexpError as err:
        raise options.error(option, f"invalid regular expression {args[1]!r}: {err}") from None
    consolidation = Consolidation(period, args[0], pattern)
    for extra in args[2:]:
        if extra == "show_first" and not consolidation.show_first:
            consolidation.show_first = True
        elif extra in LEVELS and extra != "show_first":
            consolidation.level = LEVELS[extra]
        else:
            raise options.error(
                option, f"unknown parameter {extra!r}: expected warning, error, info, debug or show_first"
            )
    return consolidation
