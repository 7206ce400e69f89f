"""
The systemd route as the README writes it: the unit passes C{systemd-analyze verify} and keeps
its C{security} exposure at 2.0 or lower; and, where C{KUBERNETAI_SYSTEM_TESTS=1} and root (as
C{.ci/run} runs it), the README's guide runs as written on this machine (but for its C{apt-get}
and C{systemctl} lines: no systemd runs here), up to C{--validate} as the service user.
"""

import os
import re
import shutil
import subprocess
import tempfile

from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from kubernetai.apiserver.tlsca import write_kubeconfig
from tests.support import another_python_environment
from tests.test_daemon import REPO, TWISTD
from tests.test_readme import read

UNIT = os.path.join(REPO, "systemd", "kubernetai.service")
SYSTEM_PATHS = ("/opt/kubernetai", "/etc/kubernetai", "/etc/systemd/system/kubernetai.service")


def guide_commands() -> list[str]:
    """The lines of the README's systemd guide."""
    block = re.search(r"<!-- systemd-guide -->\n```sh\n(.*?)```\n<!-- /systemd-guide -->", read("README.md"), re.S)
    return block.group(1).strip().splitlines()


def analyze(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=120)


def unit_running(twistd: str, directory: str) -> str:
    """A copy of the unit whose ExecStart runs C{twistd}, for verifying where /opt/kubernetai is absent."""
    path = os.path.join(directory, "kubernetai.service")
    with open(UNIT) as unit, open(path, "w") as copy:
        copy.write(unit.read().replace("/opt/kubernetai/bin/twistd", twistd))
    return path


class UnitTests(unittest.SynchronousTestCase):
    def setUp(self):
        if shutil.which("systemd-analyze") is None:
            raise unittest.SkipTest("systemd-analyze is not installed (Debian: apt-get install systemd)")

    def test_exposure_is_2_or_lower(self):
        result = analyze("security", "--offline=yes", UNIT)
        exposure = re.search(r"Overall exposure level for kubernetai.service: (\d+\.\d+)", result.stdout)
        self.assertIsNotNone(exposure, result.stdout + result.stderr)
        self.assertLessEqual(float(exposure.group(1)), 2.0)

    def test_unit_verifies(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        result = analyze("verify", unit_running(TWISTD, directory))
        self.assertEqual((result.returncode, result.stderr), (0, ""))

    def test_unit_reads_the_corefile_the_guide_installs(self):
        with open(UNIT) as unit:
            self.assertIn("--conf /etc/kubernetai/Corefile", unit.read())
        self.assertIn("install -m 0644 systemd/Corefile /etc/kubernetai/Corefile", "\n".join(guide_commands()))


class GuideTests(unittest.TestCase):
    """The guide on this very machine: it adds a user and writes /opt and /etc, and undoes it."""

    timeout = 900

    def setUp(self):
        if os.environ.get("KUBERNETAI_SYSTEM_TESTS") != "1" or os.geteuid() != 0:
            raise unittest.SkipTest("writes to /opt and /etc and adds a user: set KUBERNETAI_SYSTEM_TESTS=1, as root")
        present = [path for path in SYSTEM_PATHS if os.path.exists(path)]
        if subprocess.run(["id", "kubernetai"], capture_output=True).returncode == 0:
            present.append("user kubernetai")
        self.assertEqual(present, [], "left from an earlier install: remove them first")
        self.addCleanup(self.undo)

    @staticmethod
    def undo():
        subprocess.run(["userdel", "kubernetai"], capture_output=True)
        for path in SYSTEM_PATHS:
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.path.exists(path) and os.remove(path)

    @defer.inlineCallbacks
    def test_the_guide_reaches_validate_as_the_service_user(self):
        home = tempfile.mkdtemp(prefix="kubernetai-home-")
        self.addCleanup(shutil.rmtree, home, True)
        for name, port in (("east", 6443), ("west", 6444)):
            write_kubeconfig(os.path.join(home, f"{name}.kubeconfig"), name, f"https://127.0.0.1:{port}", token="t")
        steps = [line for line in guide_commands() if not line.startswith(("apt-get ", "systemctl "))]
        environment = another_python_environment(HOME=home)
        outputs = []
        for step in steps:
            result = yield deferToThread(subprocess.run, ["bash", "-euo", "pipefail", "-c", step], cwd=REPO,
                                         env=environment, capture_output=True, text=True, timeout=600)
            self.assertEqual(result.returncode, 0, f"{step}\n{result.stdout}\n{result.stderr}")
            outputs.append(result.stdout)
        self.assertTrue(outputs[-2].endswith("Corefile OK\n"), outputs[-2])
        stanzas = [line.strip() for line in outputs[-2].splitlines() if line.startswith("    kubernetai ")]
        self.assertEqual(stanzas, [f"kubernetai #{n} cluster.local. in-addr.arpa. ip6.arpa. (https://127.0.0.1:{port}) "
                                   "fallthrough" for n, port in ((1, 6443), (2, 6444))])
        verified = yield deferToThread(analyze, "verify", "/etc/systemd/system/kubernetai.service")
        self.assertEqual((verified.returncode, verified.stderr), (0, ""))
