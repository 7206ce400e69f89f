# -*- test-case-name: tests.test_fuzz -*-
"""
Fuzz targets for atheris: the packet handler (L{tests.fuzz.packet}), the
Corefile parser (L{tests.fuzz.corefile}) and the watch-event decoder
(L{tests.fuzz.watch_event}).  Each is run as C{python -m tests.fuzz.NAME
[libFuzzer arguments]}; L{tests.test_fuzz} runs them briefly and replays
their seed corpora (C{corpus/NAME/}) and the inputs of past crashes
(C{regressions/NAME/}).

This package imports none of our code: a target imports it inside
L{instrumented}, which instruments only modules not yet imported.
"""

from __future__ import annotations

import contextlib
import importlib

import atheris
from twisted.logger import globalLogPublisher


@contextlib.contextmanager
def instrumented(module_name: str):
    """Where the target C{module_name} imports our code: instrumented for coverage when the target
    runs as the fuzzer (C{__main__}), left as it is when the tests import it.

    The plugins, which a Corefile's server blocks import as they need them, are imported here too.
    """
    if module_name != "__main__":
        yield
        return
    with atheris.instrument_imports(include=["kubernetai"]):
        yield
        for _, plugin in importlib.import_module("kubernetai.chain").PLUGIN_ORDER:
            if plugin is not None:
                importlib.import_module(plugin)


@contextlib.contextmanager
def failures_raised():
    """Raise the first failure logged inside the block, with its own traceback.

    Our code logs and swallows what it cannot handle (a packet that trips a bug is
    dropped, an index update that fails is skipped); to a fuzzer, those are crashes.
    """
    failures = []

    def observer(event) -> None:
        if "log_failure" in event:
            failures.append(event["log_failure"])

    globalLogPublisher.addObserver(observer)
    try:
        yield
    finally:
        globalLogPublisher.removeObserver(observer)
    if failures:
        failures[0].raiseException()
