# -*- test-case-name: tests.test_fuzz -*-
"""
Fuzz target: any bytes as a Corefile, read as the daemon reads it
(C{load_corefile}) and then built (C{build_daemon}: every plugin's setup,
the listeners' tables) without starting anything.  Any input must give
server blocks and a daemon, or a L{CorefileError} naming a file and a line
of it; never another exception.

The Corefile sits in a scratch directory of its own, beside a few files it
may import or name (C{extra.server}, C{hosts}, C{resolv.conf}).  An input
naming a file that is not a plain file or a directory (C{/dev/zero}, a
FIFO, anything under C{/proc}) is not run: reading one may never end.  One
that refers to the environment is parsed without it, and not built.

    python -m tests.fuzz.corefile tests/fuzz/corpus/corefile -dict=tests/fuzz/corefile.dict -max_total_time=3600
"""

from __future__ import annotations

import atexit
import functools
import glob
import os
import re
import shutil
import sys
import tempfile

import atheris

from tests.fuzz import failures_raised, instrumented

with instrumented(__name__):
    from kubernetai.corefile import CorefileError, load_corefile
    from kubernetai.daemon import build_daemon

SCRATCH_FILES = {
    "extra.server": "extra.test {\n    whoami\n}\n",
    "hosts": "192.0.2.1 a.test\n2001:db8::1 a.test b.test\n",
    "resolv.conf": "nameserver 192.0.2.53\nsearch a.test\n",
}
WORD = re.compile(r'[^\s"{}#]+')
# The build reads the environment, which the fuzzer leaves alone: it builds only Corefiles without.
ENVIRONMENT_REFERENCE = re.compile(r"\{\$|\{%")
KERNEL_TREES = ("/dev/", "/proc/", "/sys/", "/run/")


@functools.cache
def scratch_directory() -> str:
    """A directory (removed when the process ends) holding L{SCRATCH_FILES}."""
    directory = tempfile.mkdtemp(prefix="kubernetai-fuzz-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    for name, text in SCRATCH_FILES.items():
        with open(os.path.join(directory, name), "w") as scratch:
            scratch.write(text)
    return directory


def test_one_input(data: bytes) -> None:
    """Load and build C{data} as a Corefile: blocks and a daemon, or a CorefileError at one of its lines."""
    path = os.path.join(scratch_directory(), "Corefile")
    text = data.decode("utf-8", "replace")
    if names_special_files(text, os.path.dirname(path)):
        return
    with open(path, "wb") as corefile:
        corefile.write(data)
    with failures_raised():
        try:
            load_corefile(path, environ={})
            if not ENVIRONMENT_REFERENCE.search(text):
                build_daemon(path)
        except CorefileError as err:
            check_error(err, path, data)


def check_error(err: CorefileError, path: str, data: bytes) -> None:
    """An error names a file and a line in it, and says something."""
    assert isinstance(err.file, str) and err.file, f"an error without a file: {err}"
    assert isinstance(err.line, int) and err.line >= 0, f"an error without a line: {err}"
    where = f"{err.file}:{err.line}" if err.line else err.file  # line 0: the file as a whole
    assert err.message and str(err) == f"{where}: {err.message}", repr(err)
    lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1  # as text mode reads them
    if os.path.realpath(err.file) == os.path.realpath(path):
        assert err.line <= lines, f"line {err.line} of {lines}: {err}"


def names_special_files(text: str, directory: str) -> bool:
    """Whether a word of C{text}, as a path (or a glob) from C{directory}, names something that is
    not a plain file or a directory, or lies in a kernel tree."""
    for word in WORD.findall(text):
        if "/" not in word and not word.startswith("~") or "\0" in word:
            continue
        pattern = os.path.join(directory, os.path.expanduser(word))
        for found in glob.glob(pattern) if glob.has_magic(pattern) else [pattern]:
            real = os.path.realpath(found)
            if real.startswith(KERNEL_TREES) or os.path.exists(real) and not (
                os.path.isfile(real) or os.path.isdir(real)
            ):
                return True
    return False


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
