"""
What a stanza says on its first run when its options lead to no API server: a kubeconfig that
is not there, a context the kubeconfig lacks, or neither endpoint nor kubeconfig outside a pod.
"""

import os

from twisted.trial import unittest

from kubernetai.apiserver.tlsca import write_kubeconfig
from kubernetai.chain import build_server
from kubernetai.corefile import CorefileError, parse_corefile

PREFIX = "Corefile:2: plugin/kubernetai: cannot configure the connection to the API server: "


def refusal(test: unittest.SynchronousTestCase, stanza_block: str) -> str:
    """The error building a block with one stanza of C{stanza_block}'s options gives."""
    text = f".:53 {{\n kubernetai cluster.local {{\n{stanza_block}\n }}\n}}\n"
    with test.assertRaises(CorefileError) as raised:
        build_server(parse_corefile(text, "Corefile")[0])
    message = str(raised.exception)
    test.assertTrue(message.startswith(PREFIX), message)
    return message[len(PREFIX):]


class FirstRunMessageTests(unittest.SynchronousTestCase):
    def test_missing_kubeconfig_names_the_path(self):
        path = os.path.abspath(self.mktemp())
        self.assertEqual(refusal(self, f"  kubeconfig {path}"), f"kubeconfig {path}: no such file")

    def test_missing_context_lists_the_contexts_there_are(self):
        path = os.path.abspath(self.mktemp())
        write_kubeconfig(path, "east", "https://127.0.0.1:6443", token="t")
        write_kubeconfig(path, "west", "https://127.0.0.1:6444", token="t")
        self.assertEqual(refusal(self, f"  kubeconfig {path} north"),
                         f"kubeconfig {path} has no context 'north'; its contexts: 'east', 'west'")

    def test_existing_context_is_taken(self):
        path = os.path.abspath(self.mktemp())
        write_kubeconfig(path, "east", "https://127.0.0.1:6443", token="t")
        text = f".:53 {{\n kubernetai cluster.local {{\n  kubeconfig {path} east\n }}\n}}\n"
        (group,) = build_server(parse_corefile(text, "Corefile")[0]).handlers
        self.assertEqual(group.stanzas[0].describe(), "kubernetai #1 cluster.local. (https://127.0.0.1:6443)")

    def test_no_endpoint_and_no_kubeconfig_outside_a_pod_says_what_to_add(self):
        self.assertNotIn("KUBERNETES_SERVICE_HOST", os.environ)
        self.assertEqual(
            refusal(self, "  fallthrough"),
            "no 'endpoint' or 'kubeconfig' in this stanza, and not running in a pod (KUBERNETES_SERVICE_HOST "
            "is not set): add 'kubeconfig FILE [CONTEXT]' or 'endpoint URL' to the stanza",
        )
