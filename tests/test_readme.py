"""
The README stays true: CI runs its test command, its run command names files
that exist, and its twisted.names program serves two clusters as it says.
"""

import os
import re

from twisted.internet import defer, reactor
from twisted.trial import unittest

from kubernetai.apiserver.server import ApiServer
from tests.support import FakeUpstream, query, rcode_of

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
        self.assertIn("-m twisted.trial -j2 tests", test)

    def test_the_plain_example_run_stays_documented(self):
        self.assertIn(".venv/bin/twistd -n kubernetai -c Corefile.example", read("README.md"))

    def test_ci_runs_the_readme_test_command(self):
        _, test = setup_commands()
        self.assertIn(test, read(".ci/run"))

    def test_run_command_files_exist(self):
        self.assertTrue(os.path.isfile(os.path.join(REPO, "Corefile.example")))
        self.assertTrue(os.path.isfile(os.path.join(REPO, "twisted", "plugins", "kubernetai_plugin.py")))


def resolver_example() -> str:
    """The Python program of the README's section "A stanza in twisted.names"."""
    block = re.search(r"<!-- resolver-example -->\n```python\n(.*?)```", read("README.md"), re.S)
    return block.group(1)


class ResolverExampleTests(unittest.TestCase):
    """The README's twisted.names program, run as written: two test API servers behind two stanzas, an
    upstream server for other names, and questions over UDP."""

    @defer.inlineCallbacks
    def setUp(self):
        kubeconfigs = []
        for name, service, address in [("east", "east-only", "10.1.0.1"), ("west", "west-only", "10.2.0.1")]:
            api = ApiServer(tls=True)
            api.start()
            self.addCleanup(api.stop)
            api.namespace("default")
            api.service("default", service, cluster_ips=[address], ports=[{"name": "http", "port": 80}])
            kubeconfigs.append(os.path.join(self.mktemp(), "kubeconfig"))
            os.makedirs(os.path.dirname(kubeconfigs[-1]))
            api.write_kubeconfig(kubeconfigs[-1], context=name)
        upstream = FakeUpstream({("www.example.org.", "A"): ["192.0.2.80"]})
        upstream.start(self)
        program = {"__name__": "readme_example"}
        exec(compile(resolver_example(), "README.md", "exec"), program)
        east, west, listening = yield program["serve"](reactor, *kubeconfigs, ("127.0.0.1", upstream.port), 0)
        for done in [east.stop, west.stop] + [port.stopListening for port in listening]:
            self.addCleanup(done)
        self.port = listening[0].getHost().port

    @defer.inlineCallbacks
    def addresses(self, name: str):
        reply = yield query(self.port, name, "A")
        return [item.to_text() for rrset in reply.answer for item in rrset]

    @defer.inlineCallbacks
    def test_a_name_of_the_first_cluster(self):
        self.assertEqual((yield self.addresses("east-only.default.svc.cluster.local")), ["10.1.0.1"])

    @defer.inlineCallbacks
    def test_a_name_the_first_cluster_lacks_from_the_second(self):
        self.assertEqual((yield self.addresses("west-only.default.svc.cluster.local")), ["10.2.0.1"])

    @defer.inlineCallbacks
    def test_other_names_from_the_upstream(self):
        self.assertEqual((yield self.addresses("www.example.org")), ["192.0.2.80"])

    @defer.inlineCallbacks
    def test_a_name_neither_cluster_has_is_nxdomain(self):
        reply = yield query(self.port, "nothing.default.svc.cluster.local", "A")
        self.assertEqual(rcode_of(reply), "NXDOMAIN")
