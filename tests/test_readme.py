"""
The README's two set-up commands stay true: CI runs the same test command,
and the run command names files that exist.
"""

import os
import re

from twisted.trial import unittest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(name: str) -> str:
    with open(os.path.join(REPO, name)) as text:
        return text.read()


def setup_commands() -> list[str]:
    """The lines of the README's first code block."""
    block = re.search(r"```sh\n(.*?)```", read("README.md"), re.S)
    return block.group(1).strip().splitlines()


class ReadmeTests(unittest.SynchronousTestCase):
    def test_two_commands_first(self):
        run, test = setup_commands()
        self.assertIn("pip install . && .venv/bin/kubernetai-demo", run)
        self.assertIn("-m twisted.trial tests", test)

    def test_the_plain_example_run_stays_documented(self):
        self.assertIn(".venv/bin/twistd -n kubernetai -c Corefile.example", read("README.md"))

    def test_ci_runs_the_readme_test_command(self):
        _, test = setup_commands()
        self.assertIn(test, read(".ci/run"))

    def test_run_command_files_exist(self):
        self.assertTrue(os.path.isfile(os.path.join(REPO, "Corefile.example")))
        self.assertTrue(os.path.isfile(os.path.join(REPO, "twisted", "plugins", "kubernetai_plugin.py")))
