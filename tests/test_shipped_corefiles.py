"""
The Corefiles clusters ship, as they are: kubeadm's and k3s's defaults, each
with `kubernetes` and renamed `kubernetai`, their files moved to temporary
ones and their addresses to loopback (the API server's URL given as
`endpoint`, the upstream's as forward's target, HTTP plugins on port 0),
validated and then answering through a running daemon.
"""

import os

from twisted.internet import defer
from twisted.trial import unittest

from kubernetai.apiserver.server import ApiServer
from tests.support import FakeUpstream, query, start_daemon_listening, write_corefile
from tests.test_corefile import K3S, KUBEADM
from tests.test_daemon import free_port, twistd

def localized(corefile: str, port: int, api_url: str, upstream_port: int, directory: str, directive: str) -> str:
    """C{corefile} with its addresses on loopback and its files in C{directory}."""
    text = corefile.replace(".:53", f".:{port}")
    text = text.replace("health {", "health 127.0.0.1:0 {").replace("    health\n", "    health 127.0.0.1:0\n")
    text = text.replace("    ready\n", "    ready 127.0.0.1:0\n").replace("prometheus :9153", "prometheus 127.0.0.1:0")
    text = text.replace("forward . /etc/resolv.conf", f"forward . 127.0.0.1:{upstream_port}")
    text = text.replace("/etc/coredns", directory)
    text = text.replace("kubernetes cluster.local in-addr.arpa ip6.arpa {",
                        f"{directive} cluster.local in-addr.arpa ip6.arpa {{\n       endpoint {api_url}")
    return text


class ShippedCorefileTests(unittest.TestCase):
    def setUp(self):
        self.api = ApiServer()
        self.api.start()
        self.addCleanup(self.api.stop)
        self.api.namespace("kube-system")
        self.api.service("kube-system", "kube-dns", cluster_ips=["10.43.0.10"], ports=[{"name": "dns", "port": 53}])
        self.api.service("kube-system", "multi", headless=True, ports=[{"name": "dns", "port": 53}])
        self.api.endpoint_slice("kube-system", "multi-1", "multi", ports=[{"name": "dns", "port": 53}],
                                endpoints=[{"addresses": [f"10.42.0.{n}"]} for n in range(1, 5)])
        self.upstream = FakeUpstream({("www.example.org.", "A"): ["192.0.2.1"]})
        self.upstream_port = self.upstream.start(self)
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.directory, "custom"))
        with open(os.path.join(self.directory, "NodeHosts"), "w") as hosts:
            hosts.write("172.18.0.2 k3d-server-0\n")
        with open(os.path.join(self.directory, "custom", "extra.server"), "w") as extra:
            extra.write("extra.test:{$EXTRA_PORT} {\n    whoami\n}\n")

    def corefile(self, shipped: str, directive: str, port: int) -> str:
        return localized(shipped, port, self.api.url, self.upstream_port, self.directory, directive)

    @defer.inlineCallbacks
    def check(self, shipped: str, directive: str, ttl: int):
        port = free_port()
        os.environ["EXTRA_PORT"] = str(port)
        self.addCleanup(os.environ.pop, "EXTRA_PORT", None)
        path = write_corefile(self, self.corefile(shipped, directive, port))
        validated = yield twistd("-n", "kubernetai", "-c", path, "--validate")
        self.assertEqual(validated.returncode, 0, validated.stderr)
        self.assertIn(f"{directive} #1 cluster.local.", validated.stdout)
        yield start_daemon_listening(self, open(path).read())
        service = yield query(port, "kube-dns.kube-system.svc.cluster.local", "A")
        self.assertEqual([item.address for item in service.answer[0]], ["10.43.0.10"])
        self.assertEqual(service.answer[0].ttl, ttl)
        reverse = yield query(port, "10.0.43.10.in-addr.arpa", "PTR")
        self.assertEqual(reverse.answer[0][0].to_text(), "kube-dns.kube-system.svc.cluster.local.")
        forwarded = yield query(port, "www.example.org", "A")
        self.assertEqual([item.address for item in forwarded.answer[0]], ["192.0.2.1"])
        orders = set()
        for _ in range(20):
            shuffled = yield query(port, "multi.kube-system.svc.cluster.local", "A")
            orders.add(tuple(item.address for item in shuffled.answer[0]))
        self.assertGreater(len(orders), 1, "loadbalance shuffles the endpoints")
        return port

    def test_kubeadm_with_kubernetes(self):
        return self.check(KUBEADM, "kubernetes", ttl=30)

    def test_kubeadm_with_kubernetai(self):
        return self.check(KUBEADM, "kubernetai", ttl=30)

    @defer.inlineCallbacks
    def test_k3s_with_kubernetes(self):
        port = yield self.check(K3S, "kubernetes", ttl=5)
        node = yield query(port, "k3d-server-0", "A")
        self.assertEqual([item.address for item in node.answer[0]], ["172.18.0.2"])
        imported = yield query(port, "who.extra.test", "A")
        self.assertEqual(imported.additional[0].name.to_text(), "who.extra.test.")

    @defer.inlineCallbacks
    def test_k3s_with_kubernetai(self):
        port = yield self.check(K3S, "kubernetai", ttl=5)
        node = yield query(port, "k3d-server-0", "A")
        self.assertEqual([item.address for item in node.answer[0]], ["172.18.0.2"])
