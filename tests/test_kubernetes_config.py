# -*- test-case-name: tests.test_kubernetes_config -*-
"""
Tests for L{kubernetai.kubernetes.config}: a stanza's text in, its options or
the error CoreDNS would give out; fallthrough zones.
"""

from __future__ import annotations

import math
import os
from typing import Callable

from twisted.trial.unittest import SynchronousTestCase

from kubernetai.corefile import CorefileError, parse_corefile
from kubernetai.kubernetes.config import Fallthrough, StanzaConfig, parse_stanza
from tests.support import one_test_per_row


def parse(stanza: str, keys: str = ".") -> StanzaConfig:
    """The stanza C{stanza}, written on line 2 of a server block for C{keys}."""
    (block,) = parse_corefile(f"{keys} {{\n{stanza}\n}}\n", "Corefile")
    return parse_stanza(block.directives[0], [address.zone for address in block.addresses])


def error_of(function: Callable[[str], object], text: str) -> str:
    """The error C{function(text)} raises, as text (a CorefileError or ValueError)."""
    try:
        function(text)
    except (CorefileError, ValueError) as error:
        return str(error)
    return f"no error for {text!r}"


def block(*lines: str) -> str:
    """A C{kubernetai cluster.local} stanza whose options are C{lines}, from line 3 on."""
    return "kubernetai cluster.local {\n" + "".join(f"    {line}\n" for line in lines) + "}"


KUBEADM = """\
kubernetes cluster.local in-addr.arpa ip6.arpa {
   pods insecure
   fallthrough in-addr.arpa ip6.arpa
   ttl 30
}"""

IPV6_REVERSE = ("0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.")

# (keys of the server block, stanza) -> (zones, primary zone)
ZONES = [
    ((".", "kubernetes coredns.local"), (("coredns.local.",), "coredns.local.")),
    ((".", "kubernetes coredns.local test.local"), (("coredns.local.", "test.local."), "coredns.local.")),
    ((".", "kubernetai Cluster.Local."), (("cluster.local.",), "cluster.local.")),
    ((".", "kubernetes dns://cluster.local:53"), (("cluster.local.",), "cluster.local.")),
    (
        (".", "kubernetes 10.0.0.0/23 cluster.local"),
        (("0.0.10.in-addr.arpa.", "1.0.10.in-addr.arpa.", "cluster.local."), "cluster.local."),
    ),
    ((".", "kubernetes fd00::/63 cluster.local"), (IPV6_REVERSE + ("cluster.local.",), "cluster.local.")),
    ((".", "kubernetes in-addr.arpa cluster.local"), (("in-addr.arpa.", "cluster.local."), "cluster.local.")),
    (("cluster.local", "kubernetai"), (("cluster.local.",), "cluster.local.")),
    (
        ("cluster.local:1053 10.0.0.0/23", "kubernetai"),
        (("cluster.local.", "0.0.10.in-addr.arpa.", "1.0.10.in-addr.arpa."), "cluster.local."),
    ),
    (("cluster.local example.org", "kubernetai {\n}"), (("cluster.local.", "example.org."), "cluster.local.")),
    ((".", "kubernetai"), ((".",), ".")),
]

HOME = os.path.expanduser("~")

# stanza options -> the fields they set (all others keep their defaults)
OPTIONS = [
    (["endpoint http://localhost:8080"], {"endpoint": "http://localhost:8080"}),
    (["endpoint http://localhost:9090 http://localhost:9091"], {"endpoint": "http://localhost:9090"}),
    (["endpoint https://10.0.0.1:6443/prefix/"], {"endpoint": "https://10.0.0.1:6443/prefix/"}),
    (["endpoint https://a:1", "endpoint https://b:2"], {"endpoint": "https://b:2"}),
    (["tls cert.pem key.pem ca.pem"], {"tls": ("cert.pem", "key.pem", "ca.pem")}),
    (["kubeconfig /etc/kube.conf"], {"kubeconfig": ("/etc/kube.conf", None)}),
    (["kubeconfig ~/.kube/config staging"], {"kubeconfig": (os.path.join(HOME, ".kube/config"), "staging")}),
    (
        ["endpoint https://k8s:6443", "tls c k ca", "kubeconfig kc"],
        {"endpoint": "https://k8s:6443", "tls": ("c", "k", "ca"), "kubeconfig": ("kc", None)},
    ),
    (["namespaces demo"], {"namespaces": frozenset({"demo"})}),
    (["namespaces demo test"], {"namespaces": frozenset({"demo", "test"})}),
    (["namespaces a", "namespaces b c"], {"namespaces": frozenset({"a", "b", "c"})}),
    (["labels environment=prod"], {"labels": "environment=prod"}),
    (
        ["labels environment in (production, staging, qa),application=nginx"],
        {"labels": "application=nginx,environment in (production,qa,staging)"},
    ),
    (["labels app==web , !canary"], {"labels": "app=web,!canary"}),
    (["labels tier!=cache"], {"labels": "tier!=cache"}),
    (['labels ""'], {"labels": ""}),
    (["labels a=1", "labels b=2"], {"labels": "b=2"}),
    (["namespace_labels istio-injection=enabled"], {"namespace_labels": "istio-injection=enabled"}),
    (["namespace_labels team notin (ops)"], {"namespace_labels": "team notin (ops)"}),
    (["pods disabled"], {"pods": "disabled"}),
    (["pods insecure"], {"pods": "insecure"}),
    (["pods verified"], {"pods": "verified"}),
    (["endpoint_pod_names"], {"endpoint_pod_names": True}),
    (["ttl 0"], {"ttl": 0}),
    (["ttl 3600"], {"ttl": 3600}),
    (["ttl 30 60"], {"ttl": 30}),
    (["ttl 10", "ttl 20"], {"ttl": 20}),
    (["noendpoints"], {"noendpoints": True}),
    (["fallthrough"], {"fallthrough": Fallthrough(())}),
    (["fallthrough ."], {"fallthrough": Fallthrough((".",))}),
    (["fallthrough in-addr.arpa ip6.arpa"], {"fallthrough": Fallthrough(("in-addr.arpa.", "ip6.arpa."))}),
    (
        ["fallthrough 10.0.0.0/23 Example.ORG"],
        {"fallthrough": Fallthrough(("0.0.10.in-addr.arpa.", "1.0.10.in-addr.arpa.", "example.org."))},
    ),
    (["ignore empty_service"], {"ignore_empty_service": True}),
    (["ignore empty_service and more"], {"ignore_empty_service": True}),
    (["ignore"], {}),
    (["startup_timeout 1s"], {"startup_timeout": 1.0}),
    (["startup_timeout 1m30s"], {"startup_timeout": 90.0}),
    (["startup_timeout 250ms"], {"startup_timeout": 0.25}),
    (["apiserver_qps 50.0", "apiserver_burst 100", "apiserver_max_inflight 25"],
     {"apiserver_qps": 50.0, "apiserver_burst": 100, "apiserver_max_inflight": 25}),
    (["apiserver_qps 0", "apiserver_burst 0", "apiserver_max_inflight 0"], {}),
    (["apiserver_qps .5"], {"apiserver_qps": 0.5}),
    (["apiserver_qps 1e2"], {"apiserver_qps": 100.0}),
    (["zonal"], {"zonal": True}),
    (["multicluster"], {}),
]

DEFAULTS = {
    "endpoint": None,
    "tls": None,
    "kubeconfig": None,
    "namespaces": frozenset(),
    "namespace_labels": None,
    "labels": None,
    "pods": "disabled",
    "endpoint_pod_names": False,
    "ttl": 5,
    "noendpoints": False,
    "fallthrough": None,
    "ignore_empty_service": False,
    "startup_timeout": 5.0,
    "apiserver_qps": 0.0,
    "apiserver_burst": 0,
    "apiserver_max_inflight": 0,
    "multicluster": (),
    "zonal": False,
}

# a stanza -> the error it gives, as "file:line: message"
ERRORS = [
    ("kubernetes in-addr.arpa ip6.arpa", "Corefile:2: non-reverse zone name must be used"),
    ("kubernetes 10.0.0.0/24", "Corefile:2: non-reverse zone name must be used"),
    ("kubernetes 10.0.0.0/33", "Corefile:2: invalid zone '10.0.0.0/33': expected a domain name or a network"),
    ("kubernetes tls://cluster.local", "Corefile:2: invalid zone 'tls://cluster.local'"),
    (block("frobnicate"), "Corefile:3: unknown property 'frobnicate'"),
    (block("ttl 30", "Pods insecure"), "Corefile:4: unknown property 'Pods'"),
    (block("pods insecure {", "  verified", "}"), "Corefile:4: unknown option 'verified'"),
    (block("endpoint"), "Corefile:3: expected at least 1 argument(s), got 0"),
    (block("endpoint localhost:8080"), "Corefile:3: invalid endpoint 'localhost:8080': expected a URL such as https://"),
    (block("endpoint ftp://k8s"), "Corefile:3: invalid endpoint 'ftp://k8s'"),
    (block("endpoint https://"), "Corefile:3: invalid endpoint 'https://'"),
    (block("endpoint https://k8s:port"), "Corefile:3: invalid endpoint 'https://k8s:port'"),
    (block("endpoint https://k8s:0"), "Corefile:3: invalid endpoint 'https://k8s:0'"),
    (block("tls cert key"), "Corefile:3: expected at least 3 argument(s), got 2"),
    (block("tls cert key ca extra"), "Corefile:3: unexpected argument 'extra': expected at most 3"),
    (block("kubeconfig"), "Corefile:3: expected at least 1 argument(s), got 0"),
    (block("kubeconfig file context extraarg"), "Corefile:3: unexpected argument 'extraarg': expected at most 2"),
    (block("namespaces"), "Corefile:3: expected at least 1 argument(s), got 0"),
    (block("labels"), "Corefile:3: expected at least 1 argument(s), got 0"),
    (
        block("labels environment in (production, qa"),
        "Corefile:3: unable to parse label selector value: 'environment in (production, qa': "
        "found '', expected: ',', ')' or identifier",
    ),
    (block("labels tier>2"), "Corefile:3: unable to parse label selector value: 'tier>2': '>' isn't supported"),
    (block("namespace_labels"), "Corefile:3: expected at least 1 argument(s), got 0"),
    (block("namespace_labels a b"), "Corefile:3: unable to parse namespace_label selector value: 'a b': found 'b'"),
    (block("pods"), "Corefile:3: expected at least 1 argument(s), got 0"),
    (block("pods insecure verified"), "Corefile:3: unexpected argument 'verified': expected at most 1"),
    (
        block("pods giant_seed"),
        "Corefile:3: wrong value for pods: giant_seed, must be one of: disabled, verified, insecure",
    ),
    (block("endpoint_pod_names giant_seed"), "Corefile:3: unexpected argument 'giant_seed': expected at most 0"),
    (block("noendpoints ixnay on the endpointsay"), "Corefile:3: unexpected argument 'ixnay': expected at most 0"),
    (block("zonal yes"), "Corefile:3: unexpected argument 'yes': expected at most 0"),
    (block("ttl"), "Corefile:3: expected at least 1 argument(s), got 0"),
    (block("ttl thirty"), "Corefile:3: invalid number 'thirty': expected an integer"),
    (block("ttl 3601"), "Corefile:3: ttl must be in range [0, 3600]: 3601"),
    (block("ttl -1"), "Corefile:3: ttl must be in range [0, 3600]: -1"),
    (block("fallthrough 10.0.0.0/99"), "Corefile:3: invalid zone '10.0.0.0/99'"),
    (block("ignore ixnay on the endpointsay"), "Corefile:3: unable to parse ignore value: 'ixnay': expected empty_service"),
    (block("startup_timeout"), "Corefile:3: expected at least 1 argument(s), got 0"),
    (block("startup_timeout 5"), "Corefile:3: invalid duration '5'"),
    (block("startup_timeout 0s"), "Corefile:3: startup_timeout must be greater than 0: 0s"),
    (block("apiserver_qps"), "Corefile:3: expected at least 1 argument(s), got 0"),
    (block("apiserver_qps 1 2"), "Corefile:3: unexpected argument '2': expected at most 1"),
    (block("apiserver_qps fast"), "Corefile:3: invalid apiserver_qps 'fast': expected a number"),
    (block("apiserver_qps nan"), "Corefile:3: invalid apiserver_qps 'nan': expected a number"),
    (block("apiserver_qps 1e999"), "Corefile:3: invalid apiserver_qps '1e999': expected a number"),
    (block("apiserver_qps -10"), "Corefile:3: apiserver_qps must be >= 0: -10"),
    (block("apiserver_burst"), "Corefile:3: expected at least 1 argument(s), got 0"),
    (block("apiserver_burst lots"), "Corefile:3: invalid number 'lots': expected an integer"),
    (block("apiserver_burst -5"), "Corefile:3: apiserver_burst must be >= 0: -5"),
    (block("apiserver_max_inflight 1 2"), "Corefile:3: unexpected argument '2': expected at most 1"),
    (block("apiserver_max_inflight -1"), "Corefile:3: apiserver_max_inflight must be >= 0: -1"),
    (
        block("namespaces foo bar", "ttl 30", "namespace_labels istio-injection=enabled"),
        "Corefile:5: namespaces and namespace_labels cannot both be set",
    ),
    (
        block("namespace_labels istio-injection=enabled", "namespaces foo"),
        "Corefile:4: namespaces and namespace_labels cannot both be set",
    ),
    (
        "kubernetes coredns.local {\n    multicluster clusterset.local\n}",
        "Corefile:3: is not authoritative for the multicluster zone clusterset.local. "
        "(authoritative zones: coredns.local.)",
    ),
    (
        "kubernetes coredns.local clusterset.local {\n    multicluster clusterset.local test.local\n}",
        "Corefile:3: is not authoritative for the multicluster zone test.local.",
    ),
    (block("zonal", "noendpoints"), "Corefile:4: zonal requires the endpoint cache; remove noendpoints"),
    (block("noendpoints", "ttl 5", "zonal"), "Corefile:5: zonal requires the endpoint cache; remove noendpoints"),
]


@one_test_per_row("zones", ZONES, lambda row: f"{row[0][0]} {row[0][1]}")
@one_test_per_row("options", OPTIONS, lambda row: " ".join(row[0]) or "none")
@one_test_per_row("errors", ERRORS, lambda row: row[1].partition(": ")[2])
class ParseStanzaTests(SynchronousTestCase):
    def check_zones(self, row):
        (keys, stanza), (zones, primary) = row
        config = parse(stanza, keys)
        self.assertEqual((config.zones, config.primary_zone), (zones, primary), (keys, stanza))

    def test_defaults(self):
        config = parse("kubernetai cluster.local")
        self.assertEqual({name: getattr(config, name) for name in DEFAULTS}, DEFAULTS)
        self.assertEqual((config.watches_endpoints, config.watches_pods), (True, False))

    def check_options(self, row):
        lines, fields = row
        config = parse(block(*lines))
        self.assertEqual({name: getattr(config, name) for name in DEFAULTS}, {**DEFAULTS, **fields}, lines)

    def test_multicluster(self):
        config = parse("kubernetes coredns.local clusterset.local {\n    multicluster ClusterSet.Local\n}")
        self.assertEqual(config.multicluster, ("clusterset.local.",))

    def test_kubeadm(self):
        config = parse(KUBEADM, ".:53")
        self.assertEqual(config.zones, ("cluster.local.", "in-addr.arpa.", "ip6.arpa."))
        self.assertEqual(config.primary_zone, "cluster.local.")
        self.assertEqual((config.pods, config.ttl), ("insecure", 30))
        self.assertEqual(config.fallthrough, Fallthrough(("in-addr.arpa.", "ip6.arpa.")))
        self.assertTrue(config.fallthrough.through("1.0.0.10.in-addr.arpa."))
        self.assertFalse(config.fallthrough.through("nothing.default.svc.cluster.local."))

    def test_watches(self):
        rows = [
            ([], (True, False)),
            (["noendpoints"], (False, False)),
            (["pods verified"], (True, True)),
            (["pods insecure"], (True, False)),
            (["endpoint_pod_names"], (True, True)),
        ]
        for lines, expected in rows:
            config = parse(block(*lines))
            watches = (config.watches_endpoints, config.watches_pods)
            self.assertEqual(watches, expected, lines)

    def check_errors(self, row):
        stanza, message = row
        self.assertIn(message, error_of(parse, stanza))

    def test_frozen(self):
        config = parse("kubernetai cluster.local")
        with self.assertRaises(AttributeError):
            config.ttl = 30


# fallthrough zones, name -> whether the name may fall through
THROUGH = [
    ((), "anything.example.", True),
    ((), ".", True),
    ((".",), "anything.example.", True),
    (("example.org.",), "example.org.", True),
    (("example.org.",), "www.Example.ORG", True),
    (("example.org.",), "badexample.org.", False),
    (("example.org.",), "org.", False),
    (("in-addr.arpa.", "ip6.arpa."), "4.3.2.1.in-addr.arpa.", True),
    (("in-addr.arpa.", "ip6.arpa."), "svc.cluster.local.", False),
]


@one_test_per_row("through", THROUGH, lambda row: f"{' '.join(row[0]) or 'all'} {row[1]}")
class FallthroughTests(SynchronousTestCase):
    def check_through(self, row):
        zones, name, expected = row
        self.assertEqual(Fallthrough(zones).through(name), expected, (zones, name))


class FailoverTests(SynchronousTestCase):
    """failover, ours: off by default; alone, only an unsynced stanza hands on; with a duration, a stale one too."""

    def test_values(self):
        rows = [([], None), (["failover"], math.inf), (["failover 30s"], 30.0)]
        for lines, expected in rows:
            self.assertEqual(parse(block(*lines)).failover, expected, lines)

    def test_errors(self):
        rows = [
            (block("failover 0s"), "Corefile:3: failover duration must be greater than 0: 0s"),
            (block("failover 1s 2s"), "Corefile:3: unexpected argument '2s'"),
            (block("failover soon"), "Corefile:3: invalid duration 'soon'"),
        ]
        for stanza, message in rows:
            self.assertIn(message, error_of(parse, stanza))


class NameTests(SynchronousTestCase):
    """name, ours: what metrics, /ready and the logs call the stanza; not part of its options' equality."""

    def test_values(self):
        rows = [([], None), (["name east"], "east"), (["name a", "name b.2_c-d"], "b.2_c-d"),
                (["name " + "x" * 63], "x" * 63)]
        for lines, expected in rows:
            self.assertEqual(parse(block(*lines)).name, expected, lines)

    def test_a_rename_leaves_the_options_equal(self):
        self.assertEqual(parse(block("name east")), parse(block("name west")))
        self.assertEqual(hash(parse(block("name east"))), hash(parse(block())))

    def test_errors(self):
        rule = "expected at most 63 letters, digits, '.', '_' or '-', starting with a letter or digit"
        rows = [
            (block("name"), "Corefile:3: expected at least 1 argument(s), got 0"),
            (block("name a b"), "Corefile:3: unexpected argument 'b': expected at most 1"),
            (block("ttl 5", "name \"#1\""), f"Corefile:4: invalid stanza name '#1': {rule}"),
            (block("name east,west"), "Corefile:3: invalid stanza name 'east,west'"),
            (block("name -east"), "Corefile:3: invalid stanza name '-east'"),
            (block("name " + "x" * 64), "Corefile:3: invalid stanza name"),
        ]
        for stanza, message in rows:
            self.assertIn(message, error_of(parse, stanza))
