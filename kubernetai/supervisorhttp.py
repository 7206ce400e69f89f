# -*- test-case-name: tests.test_workers -*-
"""
The supervisor's HTTP side (L{kubernetai.supervisor}): C{/health}, C{/ready},
C{/metrics} and C{/explain} at the addresses the Corefile names, each answered
from what every worker answers on its private port; and the agent that asks
them, quietly.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import protocol
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger
from twisted.web import resource, server
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from kubernetai.httpservice import plain
from kubernetai.metrics import Families
from kubernetai.plugins.ready import render_readiness

if TYPE_CHECKING:
    from kubernetai.supervisor import Supervisor

log = Logger(namespace="kubernetai.supervisorhttp")

ASK_TIMEOUT = 2.0


def worker_agent(reactor) -> tuple[Agent, HTTPConnectionPool]:
    """The agent (and its connection pool) that asks the workers' private HTTP ports."""
    pool = HTTPConnectionPool(reactor)
    return Agent.usingEndpointFactory(reactor, _WorkerEndpoints(reactor), pool=pool), pool


def not_ready_names(answers: list) -> list[str]:
    """Sorted, the names the workers' C{/ready?verbose} answers (code, document) list as not ready,
    and C{worker N} for a worker not ready that names none (no answer, or shutting down)."""
    names: set[str] = set()
    for index, answer in enumerate(answers):
        if answer is not None and answer[0] == 200:
            continue
        named = (answer[1] or {}).get("not_ready") if answer is not None else None
        names |= set(named) if named else {f"worker {index}"}
    return sorted(names)


def merged_families(pages: dict[int, str], own) -> list[Metric]:
    """One family per name: C{own}'s samples as they are, then each worker's page's with C{worker="N"};
    a page that does not parse is left out."""
    families: dict[str, Metric] = {}

    def add(family: Metric, labels: dict) -> None:
        merged = families.get(family.name)
        if merged is None:
            merged = families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
        merged.samples += [sample._replace(labels={**sample.labels, **labels}) for sample in family.samples]

    for family in own:
        add(family, {})
    for index, page in sorted(pages.items()):
        try:
            parsed = list(text_string_to_metric_families(page))
        except ValueError:
            log.warn("worker {index}: /metrics did not parse", index=index)
            continue
        for family in parsed:
            add(family, {"worker": str(index)})
    return list(families.values())


@implementer(IAgentEndpointFactory)
class _WorkerEndpoints:
    """Where the supervisor's agent connects to ask a worker: quietly (see L{_Quietly})."""

    def __init__(self, reactor) -> None:
        self.reactor = reactor

    def endpointForURI(self, uri):
        return _QuietEndpoint(TCP4ClientEndpoint(self.reactor, uri.host.decode("ascii"), uri.port, timeout=ASK_TIMEOUT))


@implementer(IStreamClientEndpoint)
class _QuietEndpoint:
    def __init__(self, endpoint) -> None:
        self.endpoint = endpoint

    def connect(self, factory):
        return self.endpoint.connect(_Quietly(factory))


class _Quietly(protocol.Factory):
    """C{factory}'s protocols, without the log lines Twisted writes as each connection starts and stops
    (the agent's pool makes a factory per connection, and a scrape asks every worker)."""

    noisy = False

    def __init__(self, factory) -> None:
        self.factory = factory

    def buildProtocol(self, addr):
        return self.factory.buildProtocol(addr)


class _Answering(resource.Resource):
    """A path of a configured HTTP address, answered from what every worker answers to C{asked}."""

    asked = ""

    def __init__(self, supervisor: Supervisor, address: tuple[str, int]) -> None:
        super().__init__()
        self.supervisor = supervisor
        self.address = address

    def render(self, request):
        answering = self.supervisor.ask_all(self.address, self.asked_for(request))
        answering.addCallback(lambda answers: self.answer(request, answers))
        gone: list = []
        request.notifyFinish().addErrback(gone.append)

        def finish(body: bytes) -> None:
            if not gone:
                request.write(body)
                request.finish()

        answering.addCallback(finish).addErrback(lambda failure: log.failure("cannot answer {path}", failure,
                                                                             path=self.asked))
        return server.NOT_DONE_YET

    def asked_for(self, request) -> str:
        """The path and query each worker is asked for C{request}."""
        return self.asked

    def answer(self, request, answers: list) -> bytes:
        raise NotImplementedError


class WorkersHealth(_Answering):
    """C{/health}: OK when every worker's is."""

    asked = "/health"

    def answer(self, request, answers: list) -> bytes:
        sick = [str(index) for index, answer in enumerate(answers) if answer is None or answer[0] != 200]
        if sick:
            return plain(request, 503, f"not healthy: worker {', '.join(sick)}")
        return plain(request, 200, "OK")


class WorkersReady(_Answering):
    """C{/ready} and C{/ready?verbose}: ready when every worker is, as ready's own words it."""

    asked = "/ready?verbose"

    def answer(self, request, answers: list) -> bytes:
        answers = [(answer[0], _json(answer[1])) if answer is not None else None for answer in answers]
        stopping = not request.site.service.running
        not_ready = [] if stopping else not_ready_names(answers)
        workers = [worker.report(answer and answer[1]) for worker, answer in zip(self.supervisor.workers, answers)]
        return render_readiness(request, stopping, not_ready, lambda: {"workers": workers})


def _json(body: bytes):
    try:
        return json.loads(body)
    except ValueError:
        return None


class WorkersMetrics(_Answering):
    """C{/metrics}: every worker's, merged, and the supervisor's own."""

    asked = "/metrics"

    def answer(self, request, answers: list) -> bytes:
        pages = {index: answer[1].decode("utf-8", "replace") for index, answer in enumerate(answers)
                 if answer is not None and answer[0] == 200}
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(Families(merged_families(pages, self.supervisor.own_families())))


class WorkersExplain(_Answering):
    """C{/explain}: the first worker's answer to the same question, its number in
    C{X-Kubernetai-Worker} (each worker answers from its own watches, cache and kept replies)."""

    asked = "/explain"

    def asked_for(self, request) -> str:
        return request.uri.decode("ascii", "replace")

    def answer(self, request, answers: list) -> bytes:
        for index, answer in enumerate(answers):
            if answer is not None:
                json_asked = b"format=json" in request.uri.partition(b"?")[2].split(b"&")
                request.setResponseCode(answer[0])
                request.setHeader(b"content-type", b"application/json" if json_asked and answer[0] == 200
                                  else b"text/plain; charset=utf-8")
                request.setHeader(b"x-kubernetai-worker", str(index).encode())
                return answer[1]
        return plain(request, 503, "no worker answered")


ANSWERING = {"health": WorkersHealth, "ready": WorkersReady, "metrics": WorkersMetrics, "explain": WorkersExplain}
