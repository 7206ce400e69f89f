"""
Every module of kubernetai says where its tests are: its first line's
C{test-case-name} header (which trial's C{--testmodule} and editors follow)
names test modules that exist.  And each logs under its own name.
"""

import importlib.util
import os
import re

from twisted.trial import unittest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = re.compile(r"#\s*-\*-\s*test-case-name:\s*(\S+)\s*-\*-")
LOGGER = re.compile(r"Logger\(namespace=\"([^\"]+)\"\)")
# Modules that log under another name, and why.
LOGGING_AS = {
    # A reload's lines are the reload plugin's in CoreDNS: kubernetai.logs prints them as plugin/reload.
    "kubernetai.daemon": "kubernetai.plugins.reload",
}
FOLDERS = ("kubernetai", "tests", "bench", "twisted")


def python_files() -> list[str]:
    """Every Python file of the project's folders, relative to the repository."""
    found = []
    for folder in FOLDERS:
        for directory, _, names in os.walk(os.path.join(REPO, folder)):
            found += [os.path.relpath(os.path.join(directory, name), REPO) for name in names if name.endswith(".py")]
    return sorted(found)


def header(path: str) -> list[str] | None:
    """The test modules C{path}'s first line names, or None without a header."""
    with open(os.path.join(REPO, path)) as source:
        match = HEADER.search(source.readline())
    return match.group(1).split(",") if match else None


class HeaderTests(unittest.SynchronousTestCase):
    def test_every_named_test_module_exists(self):
        missing = [(path, name) for path in python_files() for name in header(path) or ()
                   if importlib.util.find_spec(name) is None]
        self.assertEqual(missing, [])

    def test_every_kubernetai_module_has_one(self):
        without = [path for path in python_files() if path.startswith("kubernetai" + os.sep)
                   and os.path.basename(path) not in ("__init__.py", "__main__.py") and header(path) is None]
        self.assertEqual(without, [])


class LoggerTests(unittest.SynchronousTestCase):
    def test_every_logger_is_named_after_its_module(self):
        named = {}
        for path in python_files():
            if path.startswith("kubernetai" + os.sep):
                with open(os.path.join(REPO, path)) as source:
                    module = path[:-len(".py")].replace(os.sep, ".").removesuffix(".__init__")
                    named.update({module: namespace for namespace in LOGGER.findall(source.read())})
        self.assertEqual({module: namespace for module, namespace in named.items() if namespace != module},
                         LOGGING_AS)
