"""
The data plane against the test API server over real HTTP(S): a stanza's
watches sync, follow changes, survive dropped streams, 410s and outages,
apply its filters, and connect as its options say.
"""

import base64
import json
import os
import sys

from kubernetes.client.exceptions import ApiException
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from kubernetai.corefile import parse_corefile
from kubernetai.kubernetes.cluster import PER_NAMESPACE_WATCH_LIMIT, Cluster, api_resources, watch_plan
from kubernetai.kubernetes.config import parse_stanza
from kubernetai.kubernetes.connection import REREAD_INTERVAL, api_client
from kubernetai.kubernetes.kinds import Kind
from kubernetai.kubernetes.watch import Backoff, TokenBucket, WatchError, decode_event, describe_error, retry_after
from kubernetai.apiserver.server import ApiServer
from kubernetai.apiserver.tlsca import CertificateAuthority
from tests.support import wait_until


def stanza_config(body: str, zone: str = "cluster.local"):
    text = f".:53 {{\n    kubernetai {zone} {{\n{body}\n    }}\n}}\n"
    return parse_stanza(parse_corefile(text, "Corefile")[0].directives[0], [zone + "."])


class DataPlaneTestCase(unittest.TestCase):
    def start_api_server(self, **options) -> ApiServer:
        api = ApiServer(**options)
        api.start()
        self.addCleanup(api.stop)
        return api

    def start_cluster(self, stanza, interval: float = REREAD_INTERVAL, **connection) -> Cluster:
        cluster = Cluster(stanza, *api_client(stanza, interval, **connection), reactor)
        for watcher in cluster.watchers:
            watcher.backoff = Backoff(initial=0.1, cap=0.5)
        cluster.start()
        self.addCleanup(cluster.stop)
        return cluster

    def sync(self, body: str, api: ApiServer, **connection):
        cluster = self.start_cluster(stanza_config(body), **connection)
        return cluster.when_synced().addCallback(lambda _: cluster)


def services_of(cluster):
    return sorted(f"{namespace}/{name}" for namespace, name in cluster.snapshot.services)


class SyncTests(DataPlaneTestCase):
    def setUp(self):
        self.api = self.start_api_server()
        self.api.service("default", "web", cluster_ips=["10.0.0.10"], ports=[{"name": "http", "port": 80}])
        self.api.service("default", "db", headless=True)
        self.api.endpoint_slice("default", "db-abc", "db", endpoints=[
            {"addresses": ["10.1.0.1"], "hostname": "db-0"},
            {"addresses": ["10.1.0.2"], "ready": False},
        ])

    @defer.inlineCallbacks
    def test_initial_sync(self):
        cluster = yield self.sync(f"        endpoint {self.api.url}", self.api)
        self.assertTrue(cluster.synced)
        self.assertEqual(services_of(cluster), ["default/db", "default/web"])
        self.assertEqual([e.addresses for e in cluster.snapshot.endpoints_of("default", "db")], [("10.1.0.1",)])
        status = cluster.status()
        self.assertEqual(status["objects"]["services"], 2)
        self.assertEqual(status["api_server"], self.api.url)
        self.assertIsNone(status["stale_since"])

    @defer.inlineCallbacks
    def test_changes_are_followed(self):
        cluster = yield self.sync(f"        endpoint {self.api.url}", self.api)
        self.api.service("default", "new", cluster_ips=["10.0.0.11"])
        self.api.service("default", "web", cluster_ips=["10.0.0.99"])
        self.api.delete("services", "default", "db")
        yield wait_until(lambda: services_of(cluster) == ["default/new", "default/web"], "the changes")
        self.assertEqual(cluster.snapshot.service("default", "web").cluster_ips, ("10.0.0.99",))
        self.assertEqual(sorted(cluster.snapshot.reverse), ["10.0.0.11", "10.0.0.99"])

    @defer.inlineCallbacks
    def test_dropped_stream_resumes_without_a_list(self):
        cluster = yield self.sync(f"        endpoint {self.api.url}", self.api)
        yield wait_until(lambda: self.api.counts[("watch", "services")] >= 1, "the services watch")
        lists_before = self.api.counts[("list", "services")]
        self.api.drop_watches()
        yield wait_until(lambda: self.api.counts[("watch", "services")] >= 2, "the watch to be opened again")
        self.api.service("default", "after-drop", cluster_ips=["10.0.0.12"])
        yield wait_until(lambda: "default/after-drop" in services_of(cluster), "the change after the drop")
        self.assertEqual(self.api.counts[("list", "services")], lists_before)

    @defer.inlineCallbacks
    def test_changes_while_disconnected_are_replayed_from_the_resource_version(self):
        cluster = yield self.sync(f"        endpoint {self.api.url}", self.api)
        yield self.api.go_down()
        self.api.service("default", "while-down", cluster_ips=["10.0.0.15"])
        self.api.come_back()
        yield wait_until(lambda: "default/while-down" in services_of(cluster), "the replayed change")
        self.assertEqual(self.api.counts[("list", "services")], 1)
        resumed_from = [r.params.get("resourceVersion") for r in self.api.received
                        if r.verb == "watch" and r.resource == "services"]
        self.assertNotIn(None, resumed_from)

    @defer.inlineCallbacks
    def test_410_relists_and_replaces(self):
        cluster = yield self.sync(f"        endpoint {self.api.url}", self.api)
        yield self.api.go_down()
        self.api.delete("services", "default", "web")
        self.api.service("default", "while-down", cluster_ips=["10.0.0.13"])
        self.api.expire_history()
        self.api.come_back()
        yield wait_until(lambda: services_of(cluster) == ["default/db", "default/while-down"], "the relist")
        self.assertEqual(self.api.counts[("list", "services")], 2)
        self.assertNotIn("10.0.0.10", cluster.snapshot.reverse)

    @defer.inlineCallbacks
    def test_outage_keeps_last_data_backs_off_and_recovers(self):
        cluster = yield self.sync(f"        endpoint {self.api.url}", self.api)
        watcher = cluster.watchers[0]
        yield self.api.go_down()
        yield wait_until(lambda: cluster.status()["stale_since"] is not None, "the outage to be noticed")
        restarts_at_outage = watcher.status.restarts
        yield task.deferLater(reactor, 1.5, lambda: None)
        self.assertEqual(services_of(cluster), ["default/db", "default/web"], "last good data serves on")
        self.assertLessEqual(watcher.status.restarts - restarts_at_outage, 8, "reconnects back off")
        self.assertIn("Error", watcher.status.last_error)
        self.api.service("default", "back", cluster_ips=["10.0.0.14"])
        self.api.come_back()
        yield wait_until(lambda: "default/back" in services_of(cluster), "recovery")
        yield wait_until(lambda: cluster.status()["stale_since"] is None, "the stanza to be fresh again")

    @defer.inlineCallbacks
    def test_a_quiet_stream_that_times_out_is_resumed_without_a_failure(self):
        """kube-apiserver leaves a quiet watch silent for minutes, bookmarks or not."""
        api = self.start_api_server(bookmark_interval=0)
        api.service("default", "web", cluster_ips=["10.0.0.10"])
        stanza = stanza_config(f"        endpoint {api.url}")
        cluster = Cluster(stanza, *api_client(stanza), reactor)
        cluster.limits.read_timeout = 0.3
        cluster.start()
        self.addCleanup(cluster.stop)
        yield cluster.when_synced()
        yield wait_until(lambda: api.counts[("watch", "services")] >= 3, "the services watch to time out twice")
        self.assertEqual([watcher.status.restarts for watcher in cluster.watchers], [0] * len(cluster.watchers))
        self.assertIsNone(cluster.stale_since())
        self.assertEqual(api.counts[("list", "services")], 1, "resumed from its resourceVersion")
        resumed_from = [r.params.get("resourceVersion") for r in api.received
                        if r.verb == "watch" and r.resource == "services"]
        self.assertNotIn(None, resumed_from)
        api.service("default", "later", cluster_ips=["10.0.0.11"])
        yield wait_until(lambda: "default/later" in services_of(cluster), "a change after the timeouts")

    @defer.inlineCallbacks
    def test_server_errors_are_retried(self):
        self.api.fail_with(500, count=2)
        cluster = yield self.sync(f"        endpoint {self.api.url}", self.api)
        self.assertEqual(services_of(cluster), ["default/db", "default/web"])
        restarts = sum(watcher.status.restarts for watcher in cluster.watchers)
        self.assertEqual(restarts, 2)


class FilterTests(DataPlaneTestCase):
    def setUp(self):
        self.api = self.start_api_server()
        self.api.service("a", "web", cluster_ips=["10.0.0.1"], labels={"app": "web"})
        self.api.service("a", "db", cluster_ips=["10.0.0.2"], labels={"app": "db"})
        self.api.service("b", "web", cluster_ips=["10.0.0.3"], labels={"app": "web"})

    @defer.inlineCallbacks
    def test_labels_are_sent_as_a_selector(self):
        cluster = yield self.sync(f"        endpoint {self.api.url}\n        labels app in (web)", self.api)
        self.assertEqual(services_of(cluster), ["a/web", "b/web"])
        selectors = {r.params.get("labelSelector") for r in self.api.received if r.resource == "services"}
        self.assertEqual(selectors, {"app in (web)"})

    @defer.inlineCallbacks
    def test_namespaces_are_watched_one_by_one(self):
        cluster = yield self.sync(f"        endpoint {self.api.url}\n        namespaces a", self.api)
        self.assertEqual(services_of(cluster), ["a/db", "a/web"])
        self.assertEqual({r.namespace for r in self.api.received if r.resource == "services"}, {"a"})

    @defer.inlineCallbacks
    def test_many_namespaces_are_watched_cluster_wide_and_filtered(self):
        many = " ".join(["a"] + [f"unused-{index}" for index in range(PER_NAMESPACE_WATCH_LIMIT)])
        cluster = yield self.sync(f"        endpoint {self.api.url}\n        namespaces {many}", self.api)
        self.assertEqual(services_of(cluster), ["a/db", "a/web"])
        self.assertEqual({r.namespace for r in self.api.received if r.resource == "services"}, {None})
        self.api.service("b", "late", cluster_ips=["10.0.0.4"])
        self.api.service("a", "late", cluster_ips=["10.0.0.5"])
        yield wait_until(lambda: "a/late" in services_of(cluster), "the change in a kept namespace")
        self.assertNotIn("b/late", services_of(cluster))

    @defer.inlineCallbacks
    def test_namespace_labels_watch_namespaces(self):
        self.api.namespace("a", labels={"dns": "on"})
        self.api.namespace("b")
        cluster = yield self.sync(f"        endpoint {self.api.url}\n        namespace_labels dns=on", self.api)
        self.assertEqual(cluster.snapshot.namespaces, frozenset({"a"}))
        self.api.namespace("b", labels={"dns": "on"})
        yield wait_until(lambda: cluster.snapshot.namespaces == frozenset({"a", "b"}), "the relabelled namespace")

    @defer.inlineCallbacks
    def test_pods_only_when_needed(self):
        self.api.pod("a", "web-1", "10.2.0.1")
        plain = yield self.sync(f"        endpoint {self.api.url}", self.api)
        verified = yield self.sync(f"        endpoint {self.api.url}\n        pods verified", self.api)
        self.assertEqual([w.status.kind for w in plain.watchers], ["services", "endpointslices", "namespaces"])
        self.assertEqual([p.name for p in verified.snapshot.pods_by_ip["10.2.0.1"]], ["web-1"])


class HostileServerTests(DataPlaneTestCase):
    """What no real API server sends (found by tests.fuzz.watch_event; its inputs are in
    tests/fuzz/regressions/watch_event/): read in part or left out, and the watches go on."""

    @defer.inlineCallbacks
    def test_malformed_objects_neither_stop_the_watches_nor_reach_the_index(self):
        api = self.start_api_server()
        cluster = yield self.sync(f"        endpoint {api.url}\n        pods verified", api)
        api.put("pods", {"metadata": {"namespace": "a", "name": "failed"}, "status": "Failure"})
        api.put("services", {"metadata": {"namespace": "a", "name": "x" * 64}, "spec": {"clusterIP": "10.0.0.9"}})
        api.put("services", {"metadata": {"name": "no-namespace"}, "spec": {"clusterIP": "10.0.0.7"}})
        api.put("services", {"metadata": {"namespace": "a", "name": "odd"},
                             "spec": {"clusterIPs": ["not an address", 7, "10.0.0.8"], "ports": "80"}})
        api.service("a", "after", cluster_ips=["10.0.0.12"])
        api.pod("a", "after", "10.2.0.2")
        yield wait_until(lambda: "a/after" in services_of(cluster) and "10.2.0.2" in cluster.snapshot.pods_by_ip,
                         "the changes after the malformed ones")
        self.assertEqual(services_of(cluster), ["a/after", "a/odd"])
        self.assertEqual(cluster.snapshot.service("a", "odd").cluster_ips, ("10.0.0.8",))
        self.assertEqual(list(cluster.snapshot.pods_by_ip), ["10.2.0.2"])
        self.assertEqual([w.status.restarts for w in cluster.watchers], [0] * len(cluster.watchers))

    @defer.inlineCallbacks
    def test_list_items_that_are_no_objects_are_left_out(self):
        api = self.start_api_server()
        api.service("a", "web", cluster_ips=["10.0.0.10"])
        api.list_extras["services"] += [7, "web", None, [], {"metadata": "odd"}]
        cluster = yield self.sync(f"        endpoint {api.url}", api)
        self.assertEqual(services_of(cluster), ["a/web"])
        self.assertEqual([w.status.restarts for w in cluster.watchers], [0] * len(cluster.watchers))

    def test_lines_that_are_no_events_are_watch_errors(self):
        for line in (b"not json", b"\xff", b"[1]", b'{"type": 1}', b'{"type": "ADDED", "object": []}', b"[" * 100000):
            self.assertRaises(WatchError, decode_event, line)
        self.assertEqual(decode_event(b'{"type": "BOOKMARK", "object": {}}'), {"type": "BOOKMARK", "object": {}})


class WatchPlanTests(unittest.SynchronousTestCase):
    MULTICLUSTER = "cluster.local clusterset.local"

    def test_no_multicluster_watches_without_the_option(self):
        plan = watch_plan(stanza_config("        labels app=web", self.MULTICLUSTER))
        self.assertEqual([kind for kind, _, _ in plan], ["services", "endpointslices", "namespaces"])

    def test_multicluster_watches_imports_and_their_slices(self):
        stanza = stanza_config("        multicluster clusterset.local\n        labels app=web\n        namespaces a b",
                               self.MULTICLUSTER)
        multicluster = [row for row in watch_plan(stanza) if row[0] in (Kind.SERVICE_IMPORTS, Kind.MULTICLUSTER_ENDPOINT_SLICES)]
        self.assertEqual(multicluster, [
            (Kind.SERVICE_IMPORTS, "a", None),
            (Kind.SERVICE_IMPORTS, "b", None),
            (Kind.MULTICLUSTER_ENDPOINT_SLICES, "a", "app=web,multicluster.kubernetes.io/service-name"),
            (Kind.MULTICLUSTER_ENDPOINT_SLICES, "b", "app=web,multicluster.kubernetes.io/service-name"),
        ])

    def test_noendpoints_keeps_the_multicluster_slices(self):
        stanza = stanza_config("        multicluster clusterset.local\n        noendpoints", self.MULTICLUSTER)
        self.assertEqual([kind for kind, _, _ in watch_plan(stanza)],
                         ["services", Kind.SERVICE_IMPORTS, Kind.MULTICLUSTER_ENDPOINT_SLICES, "namespaces"])

    def test_api_resources_of_a_plain_stanza(self):
        self.assertEqual(api_resources(stanza_config("        labels app=web", self.MULTICLUSTER)), {
            ("", "services"), ("discovery.k8s.io", "endpointslices"), ("", "namespaces")})

    def test_api_resources_without_endpoints_with_pods(self):
        stanza = stanza_config("        noendpoints\n        pods verified", self.MULTICLUSTER)
        self.assertEqual(api_resources(stanza), {("", "services"), ("", "pods"), ("", "namespaces")})

    def test_api_resources_of_multicluster(self):
        stanza = stanza_config("        multicluster clusterset.local\n        noendpoints", self.MULTICLUSTER)
        self.assertEqual(api_resources(stanza), {
            ("", "services"), ("multicluster.x-k8s.io", "serviceimports"), ("discovery.k8s.io", "endpointslices"),
            ("", "namespaces")})


class MulticlusterSyncTests(DataPlaneTestCase):
    def setUp(self):
        self.api = self.start_api_server()
        self.api.service("a", "db", headless=True)
        self.api.endpoint_slice("a", "db-local", "db", [{"addresses": ["10.1.0.1"]}])
        self.api.service_import("a", "db", type="Headless")
        self.api.service_import("b", "web", ips=["10.9.0.1"], ports=[{"name": "http", "port": 80}])
        self.api.multicluster_endpoint_slice("a", "db-east", "db", "east", [{"addresses": ["10.2.0.1"]}])

    def sync_multicluster(self, body: str = ""):
        stanza = stanza_config(f"        endpoint {self.api.url}\n        multicluster clusterset.local\n{body}",
                               "cluster.local clusterset.local")
        cluster = self.start_cluster(stanza)
        return cluster.when_synced().addCallback(lambda _: cluster)

    @defer.inlineCallbacks
    def test_imports_and_multicluster_slices_sync_apart_from_services(self):
        cluster = yield self.sync_multicluster()
        snapshot = cluster.snapshot
        self.assertEqual(sorted(snapshot.imports), [("a", "db"), ("b", "web")])
        self.assertEqual(snapshot.service_import("b", "web").ips, ("10.9.0.1",))
        self.assertEqual([(s.cluster, s.endpoints[0].addresses) for s in snapshot.multicluster_slices_of("a", "db")],
                         [("east", ("10.2.0.1",))])
        self.assertEqual([e.addresses for e in snapshot.endpoints_of("a", "db")], [("10.1.0.1",)])
        selectors = {r.params.get("labelSelector") for r in self.api.received if r.resource == "endpointslices"}
        self.assertEqual(selectors, {None, "multicluster.kubernetes.io/service-name"})
        yield wait_until(lambda: self.api.counts[("watch", "serviceimports")] >= 1, "the import watch")
        self.assertEqual({r.verb for r in self.api.received if r.resource == "serviceimports"}, {"list", "watch"})

    @defer.inlineCallbacks
    def test_import_changes_are_followed(self):
        cluster = yield self.sync_multicluster()
        self.api.service_import("b", "web", ips=["10.9.0.2"], ports=[{"name": "http", "port": 80}])
        self.api.multicluster_endpoint_slice("a", "db-west", "db", "west", [{"addresses": ["10.3.0.1"]}])
        self.api.delete("serviceimports", "a", "db")
        yield wait_until(lambda: cluster.snapshot.service_import("a", "db") is None, "the deleted import")
        yield wait_until(lambda: len(cluster.snapshot.multicluster_slices_of("a", "db")) == 2, "the new slice")
        self.assertEqual(cluster.snapshot.service_import("b", "web").ips, ("10.9.0.2",))

    @defer.inlineCallbacks
    def test_namespaces_are_watched_one_by_one(self):
        cluster = yield self.sync_multicluster("        namespaces a")
        self.assertEqual(sorted(cluster.snapshot.imports), [("a", "db")])
        self.assertEqual({r.namespace for r in self.api.received if r.resource == "serviceimports"}, {"a"})


class ConnectionTests(DataPlaneTestCase):
    """TLS verified, client certificates, tokens, kubeconfig contexts and in-cluster config."""

    @defer.inlineCallbacks
    def test_tls_option_with_client_certificate(self):
        api = self.start_api_server(tls=True, require_client_cert=True)
        api.service("default", "web", cluster_ips=["10.0.0.1"])
        files = api.ca.write_client_files(self.mktemp(), "kubernetai-east")
        cluster = yield self.sync(f"        endpoint {api.url}\n        tls {files.cert} {files.key} {files.ca}", api)
        self.assertEqual(services_of(cluster), ["default/web"])
        self.assertEqual(api.last.client_cn, "kubernetai-east")

    @defer.inlineCallbacks
    def test_untrusted_server_is_not_synced(self):
        api = self.start_api_server(tls=True)
        cluster = self.start_cluster(stanza_config(f"        endpoint {api.url}"))
        yield wait_until(lambda: cluster.watchers[0].status.restarts >= 1, "a failed attempt")
        self.assertFalse(cluster.synced)
        self.assertIn("SSL", cluster.watchers[0].status.last_error)

    @defer.inlineCallbacks
    def test_kubeconfig_with_context_and_client_certificate(self):
        api = self.start_api_server(tls=True, require_client_cert=True)
        api.service("default", "web", cluster_ips=["10.0.0.1"])
        path = os.path.join(self.mktemp(), "kubeconfig")
        os.makedirs(os.path.dirname(path))
        api.write_kubeconfig(path, context="east", client_cn="kubernetai-kubeconfig")
        cluster = yield self.sync(f"        kubeconfig {path} east", api)
        self.assertEqual(services_of(cluster), ["default/web"])
        self.assertEqual(api.last.client_cn, "kubernetai-kubeconfig")

    @defer.inlineCallbacks
    def test_in_cluster_service_account(self):
        api = self.start_api_server(tls=True, token="service-account-token")
        api.service("default", "web", cluster_ips=["10.0.0.1"])
        account = self.mktemp()
        os.makedirs(account)
        with open(os.path.join(account, "token"), "w") as token:
            token.write("service-account-token")
        files = api.ca.write_client_files(self.mktemp(), "unused")
        with open(files.ca) as ca, open(os.path.join(account, "ca.crt"), "w") as copy:
            copy.write(ca.read())
        environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port)}
        cluster = yield self.sync("", api, service_account_dir=account, environ=environ)
        self.assertEqual(services_of(cluster), ["default/web"])
        self.assertEqual(api.last.headers.get("authorization").lower(), "bearer service-account-token")

    def kubeconfig(self, server: str, cluster: dict, user: dict, path: str | None = None) -> str:
        """Write a kubeconfig of one context for C{server} (to C{path}, else a new file); its path."""
        path = path or os.path.abspath(self.mktemp())
        named = {"name": "east"}
        write_file(path, json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "east",
            "clusters": [{**named, "cluster": {"server": server, **cluster}}],
            "users": [{**named, "user": user}],
            "contexts": [{**named, "context": {"cluster": "east", "user": "east"}}]}).encode())
        return path

    def token_file_kubeconfig(self, api: ApiServer, token: bytes) -> tuple[str, str]:
        """A kubeconfig for C{api} whose token is read from a file holding C{token}; both paths."""
        token_file = write_file(os.path.abspath(self.mktemp()), token)
        return self.kubeconfig(api.url, {}, {"tokenFile": token_file}), token_file

    @defer.inlineCallbacks
    def synced_once_rotated(self, path: str, rotate):
        """A stanza on the kubeconfig at C{path}, refused twice; then C{rotate}, and it must sync
        with what it holds (no restart between)."""
        cluster = self.start_cluster(stanza_config(f"        kubeconfig {path}"), interval=0.1)
        yield wait_until(lambda: cluster.watchers[0].status.restarts >= 2, "refused attempts")
        self.assertFalse(cluster.synced)
        rotate()
        yield cluster.when_synced()
        self.assertEqual(services_of(cluster), ["default/web"])

    @defer.inlineCallbacks
    def test_rotated_token_file_is_read_again(self):
        api = self.start_api_server(token="new-token")
        api.service("default", "web", cluster_ips=["10.0.0.1"])
        path, token_file = self.token_file_kubeconfig(api, b"old-token")
        yield self.synced_once_rotated(path, lambda: write_file(token_file, b"new-token"))
        self.assertEqual(api.last.headers.get("authorization").lower(), "bearer new-token")

    @defer.inlineCallbacks
    def test_rotated_inline_client_certificate_is_read_again(self):
        """A kubeconfig with its PEMs inline, replaced whole (as a Secret is): the client's files
        of them change names, so a new connection pool must be made. (Certificate files replaced
        in place are read by every new connection anyway.)"""
        api = self.start_api_server(tls=True, require_client_cert=True)
        api.service("default", "web", cluster_ips=["10.0.0.1"])
        stranger = CertificateAuthority("a CA the server does not trust").issue_client("old")
        path = self.kubeconfig(api.url, inline_pems(certificate_authority=api.ca.cert_pem),
                               inline_pems(client_certificate=stranger.cert_pem, client_key=stranger.key_pem))
        rotated = api.ca.issue_client("kubernetai-rotated")
        yield self.synced_once_rotated(path, lambda: self.kubeconfig(
            api.url, inline_pems(certificate_authority=api.ca.cert_pem),
            inline_pems(client_certificate=rotated.cert_pem, client_key=rotated.key_pem), path))
        self.assertEqual(api.last.client_cn, "kubernetai-rotated")

    @defer.inlineCallbacks
    def test_credentials_that_no_longer_read_are_kept(self):
        api = self.start_api_server(token="the-token")
        api.service("default", "web", cluster_ips=["10.0.0.1"])
        path, token_file = self.token_file_kubeconfig(api, b"the-token")
        cluster = self.start_cluster(stanza_config(f"        kubeconfig {path}"), interval=0.0)
        yield cluster.when_synced()
        os.remove(path)
        api.service("default", "db", cluster_ips=["10.0.0.2"])
        api.drop_watches()
        yield wait_until(lambda: services_of(cluster) == ["default/db", "default/web"], "the change after a reconnect")
        self.assertEqual(api.last.headers.get("authorization").lower(), "bearer the-token")

    @defer.inlineCallbacks
    def test_an_exec_plugin_that_fails_later_leaves_the_token_in_use(self):
        api = self.start_api_server(token="exec-token")
        api.service("default", "web", cluster_ips=["10.0.0.1"])
        failing = os.path.abspath(self.mktemp())
        plugin = write_file(os.path.abspath(self.mktemp()), (
            "import json, os, sys\n"
            f"if os.path.exists({failing!r}):\n    sys.exit('the identity provider is down')\n"
            "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1', 'kind': 'ExecCredential',"
            " 'status': {'token': 'exec-token'}}))\n").encode())
        path = self.kubeconfig(api.url, {}, {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable, "args": [plugin],
            "interactiveMode": "Never"}})
        cluster = self.start_cluster(stanza_config(f"        kubeconfig {path}"), interval=0.0)
        yield cluster.when_synced()
        write_file(failing, b"")
        api.service("default", "db", cluster_ips=["10.0.0.2"])
        api.drop_watches()
        yield wait_until(lambda: services_of(cluster) == ["default/db", "default/web"], "the change after a reconnect")
        self.assertEqual(api.last.headers.get("authorization").lower(), "bearer exec-token")


def inline_pems(**pems: bytes) -> dict:
    """Kubeconfig entries C{NAME-data} of PEMs, e.g. C{client-certificate-data}."""
    return {name.replace("_", "-") + "-data": base64.b64encode(pem).decode() for name, pem in pems.items()}


def write_file(path: str, data: bytes) -> str:
    """Replace the file at C{path} as a kubelet replaces a Secret's: in one rename."""
    with open(path + ".new", "wb") as out:
        out.write(data)
    os.replace(path + ".new", path)
    return path



class LimitTests(unittest.SynchronousTestCase):
    def test_token_bucket(self):
        now = [0.0]
        slept = []

        def sleep(seconds):
            slept.append(seconds)
            now[0] += seconds

        bucket = TokenBucket(qps=2, burst=3, clock=lambda: now[0], sleep=sleep)
        for _ in range(5):
            bucket.take()
        self.assertEqual(slept, [0.5, 0.5], "a burst of 3, then one call every 1/qps seconds")

    def test_unlimited(self):
        bucket = TokenBucket(qps=0, burst=0, sleep=lambda seconds: self.fail("slept"))
        for _ in range(100):
            bucket.take()

    def test_backoff_is_capped_with_jitter(self):
        backoff = Backoff(initial=0.5, cap=4.0, random=lambda: 1.0)
        self.assertEqual([backoff.next_delay() for _ in range(6)], [0.5, 1.0, 2.0, 4.0, 4.0, 4.0])
        backoff = Backoff(initial=0.5, cap=4.0, random=lambda: 0.0)
        self.assertEqual([backoff.next_delay() for _ in range(3)], [0.25, 0.5, 1.0])

    def test_retry_after_and_error_descriptions(self):
        unavailable = ApiException(status=503, reason="Service Unavailable")
        unavailable.headers = {"Retry-After": "6"}
        tls = ApiException(status=0, reason="SSLError\n[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred")
        self.assertEqual([retry_after(unavailable), retry_after(tls), retry_after(OSError("reset"))], [6.0, 0.0, 0.0])
        self.assertEqual([describe_error(unavailable), describe_error(tls)],
                         ["API server answered 503 Service Unavailable",
                          "SSLError: [SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred"])
