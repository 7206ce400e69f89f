"""
The manifests of deploy/, rendered by kustomize (tests/e2e/build-kustomize.sh builds it):

  - each ClusterRole grants list and watch on exactly what the Corefile beside it makes the
    daemon watch (L{kubernetai.kubernetes.cluster.api_resources}); every binding and
    Deployment names an identity the same layout makes; each Corefile passes C{--validate};
  - a real kube-apiserver accepts every object, with strict field validation
    (server-side apply, C{dryRun=All}: what C{kubectl apply --server-side --dry-run=server} asks);
  - the identity of each layout, applied for real, is enough for a daemon to sync with its
    Corefile's stanzas and never be refused; a remote cluster's kubeconfig made by
    deploy/remote-cluster/make-kubeconfig.py is too.

Without kustomize the tests skip with one line saying how to enable them; under CI
(C{CI=true}) they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from twisted.trial.unittest import SynchronousTestCase

from kubernetai.corefile import parse_corefile
from kubernetai.kubernetes.cluster import WATCH_VERBS, api_resources
from kubernetai.kubernetes.config import parse_stanza
from kubernetai.kubernetes.kinds import KINDS
from tests.e2e.identities import REPO, RBAC, kubeconfig, write_json
from tests.e2e.support import IN_CI, TWISTD, Daemon, E2ETestCase, eventually, stanza
from tests.e2e.test_tables import SERVICE_IMPORT_CRD, established

KUSTOMIZE_VARIABLE = "KUBERNETAI_KUSTOMIZE"
KUSTOMIZE_MODULE = os.path.join(REPO, "tests", "e2e", "kustomize", "go.mod")
MAKE_KUBECONFIG = os.path.join(REPO, "deploy", "remote-cluster", "make-kubeconfig.py")
BASE = "deploy/kubernetes/base"
OVERLAYS = ("deploy/kubernetes/overlays/pods-verified", "deploy/kubernetes/overlays/multicluster",
            "deploy/kubernetes/overlays/hpa", "deploy/kubernetes/overlays/coredns")
REMOTE = "deploy/remote-cluster"
LAYOUTS = (BASE, *OVERLAYS, REMOTE)
# The layouts whose Corefiles differ in what they watch, each run for real by a daemon.
RUN_FOR_REAL = (BASE, "deploy/kubernetes/overlays/pods-verified", "deploy/kubernetes/overlays/multicluster")
FIELD_MANAGER = "kubernetai-e2e"
# The coredns overlay's kube-dns address (kubeadm's 10.96.0.10, as users set theirs) moved into
# the test cluster's Service range (tests.e2e.controlplane.SERVICE_RANGES).
TEST_CLUSTER_DNS_IP = "10.0.0.10"
_TOKEN_SECONDS = 3600


def kustomize_version() -> str:
    """The kustomize version the module of tests/e2e/kustomize/ requires."""
    with open(KUSTOMIZE_MODULE) as go_mod:
        return re.search(r"sigs\.k8s\.io/kustomize/kustomize/v5 (v[0-9.]+)", go_mod.read())[1]


def kustomize_binary() -> str:
    """$KUBERNETAI_KUSTOMIZE, else where tests/e2e/build-kustomize.sh leaves its build."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get(KUSTOMIZE_VARIABLE) or os.path.join(cache, "kubernetai", f"kustomize-{kustomize_version()}")


def kustomize_missing() -> str | None:
    """Why manifests cannot be rendered here, on one line saying how to enable it; None if they can."""
    if os.access(kustomize_binary(), os.X_OK):
        return None
    return f"deploy tests need kustomize ({kustomize_binary()}): run tests/e2e/build-kustomize.sh or set {KUSTOMIZE_VARIABLE}"


def render(layout: str) -> list[dict]:
    """The objects C{kustomize build} makes of a layout (a path relative to the repository)."""
    output = subprocess.run([kustomize_binary(), "build", os.path.join(REPO, layout)],
                            capture_output=True, text=True, check=True).stdout
    return [document for document in yaml.safe_load_all(output) if document]


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [obj for obj in objects if obj["kind"] == kind]


def grants(role: dict) -> frozenset[tuple[str, str]]:
    """(API group, resource) of every rule of a ClusterRole, which must allow list and watch only."""
    pairs = set()
    for rule in role["rules"]:
        if sorted(rule["verbs"]) != sorted(WATCH_VERBS) or set(rule) - {"apiGroups", "resources", "verbs"}:
            raise AssertionError(f"a rule that is not list and watch of resources: {rule}")
        pairs.update((group, resource) for group in rule["apiGroups"] for resource in rule["resources"])
    return frozenset(pairs)


def corefile_text(objects: list[dict]) -> str:
    """The Corefile of a layout's ConfigMap."""
    (config_map,) = of_kind(objects, "ConfigMap")
    return config_map["data"]["Corefile"]


def stanza_directives(corefile: str):
    """(directive, zones of its server block) of every kubernetai/kubernetes stanza in C{corefile}."""
    for block in parse_corefile(corefile, "Corefile"):
        for directive in block.directives:
            if directive.name in ("kubernetai", "kubernetes"):
                yield directive, [address.zone for address in block.addresses]


def watched(corefile: str) -> frozenset[tuple[str, str]]:
    """(API group, resource) of everything the stanzas of C{corefile} list and watch."""
    return frozenset().union(*(api_resources(parse_stanza(directive, zones))
                               for directive, zones in stanza_directives(corefile)))


class ManifestTests(SynchronousTestCase):
    """What kustomize renders, checked against the code; no API server needed."""

    skip = None if IN_CI else kustomize_missing()

    def test_each_role_grants_what_its_corefile_watches(self):
        for layout in (BASE, *OVERLAYS):
            objects = render(layout)
            (role,) = of_kind(objects, "ClusterRole")
            self.assertEqual(grants(role), watched(corefile_text(objects)), layout)

    def test_overlays_add_what_their_corefiles_need(self):
        base = watched(corefile_text(render(BASE)))
        self.assertEqual(watched(corefile_text(render(OVERLAYS[0]))) - base, {("", "pods")})
        self.assertEqual(watched(corefile_text(render(OVERLAYS[1]))) - base, {("multicluster.x-k8s.io", "serviceimports")})

    def test_remote_cluster_role_is_the_base_role(self):
        (remote,) = of_kind(render(REMOTE), "ClusterRole")
        (base,) = of_kind(render(BASE), "ClusterRole")
        self.assertEqual(remote, base)

    def test_rbac_yaml_grants_every_kind(self):
        with open(RBAC) as rbac:
            (role,) = [document for document in yaml.safe_load_all(rbac) if document]
        self.assertEqual(grants(role), frozenset(table.api_resource for table in KINDS.values()))

    def test_bindings_and_deployments_name_identities_of_their_layout(self):
        for layout in LAYOUTS:
            objects = render(layout)
            accounts = {(obj["metadata"]["namespace"], obj["metadata"]["name"]) for obj in of_kind(objects, "ServiceAccount")}
            roles = {obj["metadata"]["name"] for obj in of_kind(objects, "ClusterRole")}
            for binding in of_kind(objects, "ClusterRoleBinding"):
                self.assertIn(binding["roleRef"]["name"], roles, layout)
                for subject in binding["subjects"]:
                    self.assertIn((subject["namespace"], subject["name"]), accounts, layout)
            for deployment in of_kind(objects, "Deployment"):
                account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
                self.assertIn((deployment["metadata"]["namespace"], account), accounts, layout)

    def test_coredns_overlay_replaces_kube_dns(self):
        objects = render(OVERLAYS[3])
        self.assertEqual({obj["metadata"].get("namespace", "kube-system") for obj in objects}, {"kube-system"})
        self.assertEqual(of_kind(objects, "Namespace"), [])
        (service,) = of_kind(objects, "Service")
        self.assertEqual(service["metadata"]["name"], "kube-dns")
        self.assertEqual(service["spec"]["selector"], {"k8s-app": "kube-dns"})
        self.assertEqual({key: service["metadata"]["labels"][key] for key in ("k8s-app", "kubernetes.io/name")},
                         {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"})
        self.assertEqual([(port["name"], port["port"], port["protocol"]) for port in service["spec"]["ports"]],
                         [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")])
        (deployment,) = of_kind(objects, "Deployment")
        self.assertEqual(deployment["spec"]["template"]["metadata"]["labels"]["k8s-app"], "kube-dns")

    def test_each_corefile_validates(self):
        """As the image runs it, but with an C{endpoint}: outside a pod there is no service account."""
        for layout in (BASE, *OVERLAYS):
            path = self.mktemp() + "-Corefile"
            with open(path, "w") as corefile:
                corefile.write(re.sub(r"(\n\s*kubernetai [^{\n]*\{)", r"\1\n        endpoint https://127.0.0.1:6443",
                                      corefile_text(render(layout))))
            done = subprocess.run([TWISTD, "-n", "--pidfile=", "kubernetai", "-c", path, "--validate"],
                                  capture_output=True, text=True, timeout=60)
            self.assertEqual(done.returncode, 0, f"{layout}: {done.stdout}{done.stderr}")


class Server:
    """Raw requests to the control plane as its admin: discovery and server-side apply."""

    def __init__(self, plane) -> None:
        self.url = plane.url
        self.context: ssl.SSLContext = plane.admin_context()
        self.resources: dict[tuple[str, str], tuple[str, bool]] = {}

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"):
        request = urllib.request.Request(self.url + path, body, {"content-type": content_type}, method=method)
        with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
            return json.load(response)

    def path(self, obj: dict) -> str:
        """The URL path of C{obj}, its resource found by discovery."""
        api_version, kind = obj["apiVersion"], obj["kind"]
        prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if (api_version, kind) not in self.resources:
            for resource in self.request("GET", prefix)["resources"]:
                if "/" not in resource["name"]:
                    self.resources[(api_version, resource["kind"])] = (resource["name"], resource["namespaced"])
        plural, namespaced = self.resources[(api_version, kind)]
        if namespaced and "namespace" not in obj["metadata"]:
            raise AssertionError(f"{kind} {obj['metadata']['name']}: no namespace")
        namespace = f"/namespaces/{obj['metadata']['namespace']}" if namespaced else ""
        return f"{prefix}{namespace}/{plural}/{obj['metadata']['name']}"

    def apply(self, obj: dict, dry_run: bool = False) -> dict:
        """Server-side apply of C{obj} with strict field validation; C{dry_run}: only checked, not stored."""
        query = f"?fieldManager={FIELD_MANAGER}&force=true&fieldValidation=Strict" + ("&dryRun=All" if dry_run else "")
        try:
            return self.request("PATCH", self.path(obj) + query, json.dumps(obj).encode(),
                                "application/apply-patch+yaml")
        except urllib.error.HTTPError as err:
            raise AssertionError(f"{obj['kind']} {obj['metadata']['name']}: {err.code} {err.read().decode()}") from None


def renamed(objects: list[dict], suffix: str, namespace: str | None) -> list[dict]:
    """The identity objects of a layout with cluster-wide names ending in C{suffix} (and moved to
    C{namespace}, if given), so that they stand beside the harness's own ClusterRole."""
    identity = [json.loads(json.dumps(obj)) for obj in objects
                if obj["kind"] in ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Secret")]
    for obj in identity:
        metadata = obj["metadata"]
        if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            metadata["name"] += suffix
        if obj["kind"] == "ClusterRoleBinding":
            obj["roleRef"]["name"] += suffix
            for subject in obj["subjects"]:
                subject["namespace"] = namespace or subject["namespace"]
        if namespace and obj["kind"] == "Namespace":
            metadata["name"] = namespace
        elif namespace and "namespace" in metadata:
            metadata["namespace"] = namespace
    return identity


class DeployTestCase(E2ETestCase):
    skip = E2ETestCase.skip or (None if IN_CI else kustomize_missing())

    def setUp(self) -> None:
        super().setUp()
        self.server = Server(self.plane)


class ServerValidationTests(DeployTestCase):
    def test_the_api_server_accepts_every_object(self):
        self.server.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubernetai"}})
        refused = []
        for layout in LAYOUTS:
            for obj in render(layout):
                if obj["kind"] == "Service" and "clusterIP" in obj["spec"]:
                    obj["spec"]["clusterIP"] = TEST_CLUSTER_DNS_IP
                try:
                    applied = self.server.apply(obj, dry_run=True)
                except AssertionError as err:
                    refused.append(f"{layout}: {err}")
                    continue
                self.assertEqual((applied["kind"], applied["metadata"]["name"]), (obj["kind"], obj["metadata"]["name"]))
        self.assertEqual(refused, [])

    def test_an_unknown_field_is_refused(self):
        (deployment,) = of_kind(render(BASE), "Deployment")
        deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesystem"] = True
        self.server.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubernetai"}})
        self.assertRaises(AssertionError, self.server.apply, deployment, True)


def forbidden_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "forbidden" in line.lower()]


def remove_crd(extensions: client.ApiextensionsV1Api, name: str) -> None:
    """Delete a CustomResourceDefinition; return once it is gone."""
    extensions.delete_custom_resource_definition(name)

    def gone() -> bool:
        try:
            extensions.read_custom_resource_definition(name)
        except ApiException as err:
            return err.status == 404
        return False

    eventually(gone, 30.0, f"{name} deleted")


class LeastPrivilegeTests(DeployTestCase):
    """Each layout's identity, applied for real, through a token of its ServiceAccount."""

    def service_import_crd(self) -> None:
        """The ServiceImport CRD for the multicluster overlay; removed again if this test made it
        (tests.e2e.test_tables makes its own)."""
        extensions = client.ApiextensionsV1Api(self.admin.api)
        try:
            extensions.create_custom_resource_definition(SERVICE_IMPORT_CRD)
        except ApiException as err:
            if err.status != 409:
                raise
            return
        self.addCleanup(remove_crd, extensions, SERVICE_IMPORT_CRD["metadata"]["name"])
        eventually(lambda: established(extensions), 30.0, "the ServiceImport CRD established")

    def token_kubeconfig(self, namespace: str, account: str) -> str:
        core = client.CoreV1Api(self.admin.api)
        token = core.create_namespaced_service_account_token(
            account, namespace, {"spec": {"expirationSeconds": _TOKEN_SECONDS}}).status.token
        return write_json(os.path.join(self.identities.directory, f"{namespace}.kubeconfig"),
                          kubeconfig(self.plane.url, self.plane.files.ca.cert, {"token": token}))

    def synced_without_refusal(self, corefile: str, kubeconfig_path: str) -> None:
        body = "\n".join(stanza(" ".join(directive.args), kubeconfig_path,
                                *(" ".join((option.name, *option.args)) for option in directive.block))
                         for directive, _ in stanza_directives(corefile))
        daemon = Daemon(self, body)
        daemon.wait_ready()
        self.assertEqual(forbidden_lines(daemon.log()), [])

    def test_each_layout_identity_suffices(self):
        self.service_import_crd()
        for number, layout in enumerate(RUN_FOR_REAL):
            objects = render(layout)
            namespace = f"deploy-{number}"
            for obj in renamed(objects, f"-deploy-{number}", namespace):
                self.server.apply(obj)
            (account,) = of_kind(objects, "ServiceAccount")
            self.synced_without_refusal(corefile_text(objects),
                                        self.token_kubeconfig(namespace, account["metadata"]["name"]))

    def test_remote_cluster_kubeconfig_suffices(self):
        for obj in renamed(render(REMOTE), "-deploy-remote", None):
            self.server.apply(obj)
        made = subprocess.run([sys.executable, MAKE_KUBECONFIG, "--kubeconfig", self.identities.admin,
                               "--name", "east", "--duration", str(_TOKEN_SECONDS)],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(made.returncode, 0, made.stderr)
        path = os.path.join(self.identities.directory, "east.kubeconfig")
        with open(path, "w") as out:
            out.write(made.stdout)
        self.assertEqual(yaml.safe_load(made.stdout)["clusters"][0]["cluster"]["server"], self.plane.url)
        self.synced_without_refusal(corefile_text(render(BASE)), path)
