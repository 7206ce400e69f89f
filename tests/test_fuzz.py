"""
The fuzz targets of L{tests.fuzz}: every input of their seed corpora and
every input that once crashed them, replayed in this process; and each
target run as a fuzzer (atheris, libFuzzer) from its corpus for a bounded
time, all at once, which must end without a crash.

C{KUBERNETAI_FUZZ_SECONDS} sets that time (default 20 seconds; 0 skips the
runs).  What a run adds to the corpus goes to a temporary directory.
"""

import glob
import os
import sys

from twisted.internet import defer, utils
from twisted.trial import unittest

from tests.fuzz import corefile, packet, watch_event

TARGETS = {"packet": packet, "corefile": corefile, "watch_event": watch_event}
FUZZ_DIRECTORY = os.path.dirname(os.path.abspath(corefile.__file__))
REPOSITORY = os.path.dirname(os.path.dirname(FUZZ_DIRECTORY))
SECONDS = int(os.environ.get("KUBERNETAI_FUZZ_SECONDS", "20"))
OUTPUT_SHOWN = 6000


def seed_directories(target: str) -> list[str]:
    """The target's seed corpus and its past crashes."""
    return [os.path.join(FUZZ_DIRECTORY, kind, target) for kind in ("corpus", "regressions")]


def inputs(target: str) -> list[str]:
    return sorted(path for directory in seed_directories(target) for path in glob.glob(os.path.join(directory, "*")))


class ReplayTests(unittest.SynchronousTestCase):
    """Every seed and every past crash goes through its target without breaking an invariant."""

    def replay(self, target: str) -> None:
        paths = inputs(target)
        self.assertGreater(len(paths), 10, f"the {target} corpus is missing")
        for path in paths:
            with open(path, "rb") as replayed:
                data = replayed.read()
            try:
                TARGETS[target].test_one_input(data)
            except Exception as err:
                raise AssertionError(f"{os.path.relpath(path, REPOSITORY)}: {err!r}") from err

    def test_packet(self):
        self.replay("packet")

    def test_corefile(self):
        self.replay("corefile")

    def test_watch_event(self):
        self.replay("watch_event")


def fuzz(target: str, seconds: int, work: str) -> defer.Deferred:
    """Run C{target} as a fuzzer for C{seconds}; a Deferred firing with (target, exit code, its output)."""
    os.makedirs(os.path.join(work, "corpus"))
    arguments = ["-m", f"tests.fuzz.{target}", os.path.join(work, "corpus"), *seed_directories(target),
                 f"-max_total_time={seconds}", f"-artifact_prefix={work}{os.sep}"]
    dictionary = os.path.join(FUZZ_DIRECTORY, f"{target}.dict")
    if os.path.exists(dictionary):
        arguments.append(f"-dict={dictionary}")
    running = utils.getProcessOutputAndValue(sys.executable, arguments, env=dict(os.environ), path=REPOSITORY)
    return running.addCallback(lambda result: (target, result[2], result[1].decode("utf-8", "replace")))


class BoundedRunTests(unittest.TestCase):
    """The targets, run as fuzzers side by side, find nothing in the time they are given."""

    @defer.inlineCallbacks
    def test_every_target_runs_clean(self):
        if SECONDS <= 0:
            raise unittest.SkipTest("KUBERNETAI_FUZZ_SECONDS is 0")
        runs = yield defer.gatherResults([fuzz(target, SECONDS, os.path.abspath(self.mktemp()))
                                          for target in TARGETS])
        crashed = [f"{target} exited {code}:\n{output[-OUTPUT_SHOWN:]}" for target, code, output in runs if code != 0]
        self.assertEqual(crashed, [], "\n\n".join(crashed))
        for target, _, output in runs:
            self.assertIn("Done ", output, f"{target} did not fuzz:\n{output[-OUTPUT_SHOWN:]}")

    test_every_target_runs_clean.timeout = SECONDS + 120
