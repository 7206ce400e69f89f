# -*- test-case-name: tests.test_apiserver -*-
"""
Tests for the fake Kubernetes API server in L{kubernetai.apiserver.server}: the official kubernetes
client, run in threads, lists and watches it unchanged, over HTTP and HTTPS.
"""

import json
import os
import ssl

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines
from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from kubernetai.apiserver.resources import Event, Query, parse_selector, resource_type, route
from kubernetai.apiserver.server import ApiServer
from tests.support import one_test_per_row, wait_until
from tests import protocol

SERVICES = resource_type("services")


class EventReader:
    """Reads watch events, one JSON line each, from a raw streaming response; call it in a thread."""

    def __init__(self, response):
        self.response = response
        self._lines = iter_resp_lines(response)

    def read(self, count):
        """The next C{count} events."""
        return [json.loads(next(self._lines)) for _ in range(count)]

    def read_to_end(self):
        """Every event until the server ends the stream."""
        return [json.loads(line) for line in self._lines]


class ApiServerTestCase(unittest.TestCase):
    """Starts an L{ApiServer} for each test; each client gets its own Configuration."""

    timeout = 20
    server_options = {}

    def setUp(self):
        self.api = ApiServer(bookmark_interval=0.05, **self.server_options)
        self.url = self.api.start()
        self.addCleanup(self.api.stop)

    def api_client(self, **settings):
        """A new ApiClient for this server; C{settings} are Configuration attributes."""
        configuration = client.Configuration(host=self.url)
        for name, value in settings.items():
            setattr(configuration, name, value)
        api_client = client.ApiClient(configuration)
        self.addCleanup(deferToThread, api_client.close)
        return api_client

    def core(self, **settings):
        """A CoreV1Api on a new ApiClient."""
        return client.CoreV1Api(self.api_client(**settings))

    @defer.inlineCallbacks
    def open_watch(self, list_function, *args, **kwargs):
        """Start a raw watch in a thread; fire with an L{EventReader} once the headers are in."""
        response = yield deferToThread(list_function, *args, watch=True, _preload_content=False, **kwargs)
        self.addCleanup(deferToThread, response.close)
        return EventReader(response)

    def add_services(self, *service_names, namespace="default"):
        """Add one ClusterIP Service per name, at 10.0.0.1, 10.0.0.2, ..."""
        for index, name in enumerate(service_names):
            self.api.service(namespace, name, cluster_ips=[f"10.0.0.{index + 1}"])


def raw_json(list_function, *args, **kwargs):
    """Call a list function for its raw response and parse the body; call it in a thread."""
    return json.loads(list_function(*args, _preload_content=False, **kwargs).data)


def names(events):
    """(type, name) of each watch event."""
    return [(event["type"], event["object"]["metadata"]["name"]) for event in events]


# label selector, whether it selects the labels app=web, tier=front.
SELECTORS = [
    ("", True), ("app=web", True), ("app==web", True), ("app=db", False),
    ("app!=db", True), ("app!=web", False), ("missing!=x", True),
    ("app in (web, db)", True), ("app in (db)", False), ("missing in (x)", False),
    ("app notin (db)", True), ("app notin (web,db)", False), ("missing notin (x)", True),
    ("app", True), ("missing", False), ("!missing", True), ("!app", False),
    ("app in (db,web),tier=front", True), ("app in (db,web),tier!=front", False),
]


# path, the resource and namespace it names (None: not one served).
ROUTES = [
    ("/api/v1/services", ("services", None)),
    ("/api/v1/namespaces/kube-system/services", ("services", "kube-system")),
    ("/apis/discovery.k8s.io/v1/namespaces/a/endpointslices", ("endpointslices", "a")),
    ("/apis/discovery.k8s.io/v1/endpointslices", ("endpointslices", None)),
    ("/apis/multicluster.x-k8s.io/v1alpha1/namespaces/a/serviceimports", ("serviceimports", "a")),
    ("/apis/multicluster.x-k8s.io/v1alpha1/serviceimports", ("serviceimports", None)),
    ("/apis/multicluster.x-k8s.io/v1beta1/serviceimports", None),
    ("/api/v1/pods", ("pods", None)),
    ("/api/v1/namespaces", ("namespaces", None)),
    ("/api/v1/namespaces/a/namespaces", None),
    ("/api/v1/endpointslices", None),
    ("/api/v1/widgets", None),
    ("/version", None),
]


@one_test_per_row("selectors", SELECTORS, lambda row: row[0] or "empty")
@one_test_per_row("routes", ROUTES, lambda row: row[0])
class ApiObjectsTests(unittest.SynchronousTestCase):
    """Label selectors, URL routing and watch-event filtering, without a reactor."""

    labels = {"app": "web", "tier": "front"}

    def check_selectors(self, row):
        text, expected = row
        self.assertEqual(parse_selector(text)(self.labels), expected, text)

    def test_malformed_selectors(self):
        for text in ["app in db", "app=(x)", "a b", "app in (x"]:
            self.assertRaises(ValueError, parse_selector, text)

    def check_routes(self, row):
        path, expected = row
        found = route(path)
        self.assertEqual(found and (found[0].plural, found[1]), expected, path)

    def test_watchers_see_label_changes_as_add_and_delete(self):
        web, db = ({"metadata": {"name": "s", "labels": {"app": app}}} for app in ("web", "db"))
        query = Query(SERVICES, None, parse_selector("app=web"))
        rows = [
            (Event(2, SERVICES, "MODIFIED", web, web), "MODIFIED"),
            (Event(2, SERVICES, "MODIFIED", db, web), "DELETED"),
            (Event(2, SERVICES, "MODIFIED", web, db), "ADDED"),
            (Event(2, SERVICES, "MODIFIED", db, db), None),
            (Event(2, SERVICES, "ADDED", db), None),
            (Event(2, resource_type("Pod"), "ADDED", web), None),
        ]
        for event, expected in rows:
            self.assertEqual(query.event_type(event), expected, event)


class ListTests(ApiServerTestCase):
    """LIST requests, as models and raw JSON."""

    @defer.inlineCallbacks
    def test_list_services_as_models(self):
        self.add_services("web", namespace="a")
        self.add_services("db", namespace="b")
        core = self.core()
        everything = yield deferToThread(core.list_service_for_all_namespaces)
        only_b = yield deferToThread(core.list_namespaced_service, "b")
        self.assertEqual([s.metadata.name for s in everything.items], ["web", "db"])
        self.assertEqual(everything.metadata.resource_version, str(self.api.resource_version))
        self.assertEqual([(s.metadata.namespace, s.spec.cluster_ip) for s in only_b.items],
                         [("b", "10.0.0.1")])
        self.assertEqual(self.api.counts["list", "services"], 2)

    @defer.inlineCallbacks
    def test_list_raw(self):
        dns = {"name": "dns", "port": 53, "protocol": "UDP"}
        self.api.service("a", "headless", headless=True, ports=[dns])
        body = yield deferToThread(raw_json, self.core().list_service_for_all_namespaces)
        self.assertEqual((body["kind"], body["apiVersion"]), ("ServiceList", "v1"))
        [item] = body["items"]
        self.assertNotIn("kind", item)
        self.assertEqual(item["spec"]["clusterIP"], "None")
        self.assertEqual(item["spec"]["ports"], [dns])

    @defer.inlineCallbacks
    def test_list_other_resources(self):
        self.api.endpoint_slice("a", "web-x1", "web", ports=[{"name": "http", "port": 80}], endpoints=[
            {"addresses": ["10.1.0.1"], "hostname": "web-0", "nodeName": "n1", "zone": "z1",
             "targetRef": {"kind": "Pod", "namespace": "a", "name": "web-0"}},
            {"addresses": ["10.1.0.2"], "ready": False},
        ])
        self.api.pod("a", "web-0", "10.1.0.1", labels={"app": "web"})
        self.api.namespace("a", labels={"team": "x"})
        api_client = self.api_client()
        discovery, core = client.DiscoveryV1Api(api_client), client.CoreV1Api(api_client)
        slices = yield deferToThread(discovery.list_namespaced_endpoint_slice, "a")
        pods = yield deferToThread(core.list_pod_for_all_namespaces)
        namespaces = yield deferToThread(core.list_namespace)
        ready, unready = slices.items[0].endpoints
        self.assertEqual(slices.items[0].metadata.labels["kubernetes.io/service-name"], "web")
        self.assertEqual((ready.hostname, ready.target_ref.name, ready.conditions.ready),
                         ("web-0", "web-0", True))
        self.assertFalse(unready.conditions.ready)
        self.assertEqual(pods.items[0].status.pod_ip, "10.1.0.1")
        self.assertEqual(namespaces.items[0].metadata.labels["team"], "x")

    @defer.inlineCallbacks
    def test_list_service_imports_and_multicluster_slices(self):
        http = {"name": "http", "port": 80}
        self.api.service_import("a", "web", ips=["10.10.0.1"], ports=[http])
        self.api.service_import("b", "db", type="Headless")
        self.api.multicluster_endpoint_slice("b", "db-east", "db", "east", [{"addresses": ["10.2.0.1"]}])
        self.api.endpoint_slice("b", "db-local", "db", [{"addresses": ["10.1.0.1"]}])
        api_client = self.api_client()
        custom, discovery = client.CustomObjectsApi(api_client), client.DiscoveryV1Api(api_client)
        resource = {"group": "multicluster.x-k8s.io", "version": "v1alpha1", "plural": "serviceimports"}
        everywhere = yield deferToThread(custom.list_cluster_custom_object, **resource)
        in_a = yield deferToThread(custom.list_namespaced_custom_object, namespace="a", **resource)
        multicluster = yield deferToThread(discovery.list_endpoint_slice_for_all_namespaces,
                                           label_selector="multicluster.kubernetes.io/service-name")
        self.assertEqual(everywhere["kind"], "ServiceImportList")
        self.assertEqual([(i["metadata"]["name"], i["spec"]["type"]) for i in everywhere["items"]],
                         [("web", "ClusterSetIP"), ("db", "Headless")])
        self.assertEqual([i["spec"] for i in in_a["items"]],
                         [{"type": "ClusterSetIP", "ips": ["10.10.0.1"], "ports": [{"protocol": "TCP", **http}]}])
        self.assertEqual([(s.metadata.name, s.metadata.labels["multicluster.kubernetes.io/source-cluster"])
                          for s in multicluster.items], [("db-east", "east")])

    @defer.inlineCallbacks
    def test_label_selector(self):
        for name, app in [("web", "web"), ("db", "db"), ("cache", "cache")]:
            self.api.service("a", name, labels={"app": app})
        found = yield deferToThread(self.core().list_service_for_all_namespaces,
                                    label_selector="app in (web,cache),app!=cache")
        self.assertEqual([s.metadata.name for s in found.items], ["web"])

    @defer.inlineCallbacks
    def test_malformed_selector_is_bad_request(self):
        listing = deferToThread(self.core().list_service_for_all_namespaces, label_selector="app in web")
        failure = yield self.assertFailure(listing, ApiException)
        self.assertEqual(failure.status, 400)

    @defer.inlineCallbacks
    def test_pages_are_a_consistent_snapshot(self):
        self.add_services("a", "b", "c", "d", "e")
        core = self.core()
        first = yield deferToThread(core.list_service_for_all_namespaces, limit=2)
        self.api.service("default", "aa")
        pages, token = [first], first.metadata._continue
        while token:
            page = yield deferToThread(core.list_service_for_all_namespaces, limit=2, _continue=token)
            pages.append(page)
            token = page.metadata._continue
        self.assertEqual([[s.metadata.name for s in page.items] for page in pages],
                         [["a", "b"], ["c", "d"], ["e"]])
        self.assertEqual({page.metadata.resource_version for page in pages},
                         {first.metadata.resource_version})

    @defer.inlineCallbacks
    def test_unknown_continue_token_is_gone(self):
        listing = deferToThread(self.core().list_service_for_all_namespaces, limit=1, _continue="nope")
        failure = yield self.assertFailure(listing, ApiException)
        self.assertEqual(failure.status, 410)

    @defer.inlineCallbacks
    def test_unknown_path_and_discovery(self):
        pool = urllib3.PoolManager()
        missing = yield deferToThread(pool.request, "GET", self.url + "/api/v1/widgets")
        version = yield deferToThread(client.VersionApi(self.api_client()).get_code)
        ready = yield deferToThread(pool.request, "GET", self.url + "/readyz")
        self.assertEqual((missing.status, json.loads(missing.data)["reason"]), (404, "NotFound"))
        self.assertEqual(version.major, "1")
        self.assertEqual((ready.status, ready.data), (200, b"ok"))


class WatchTests(ApiServerTestCase):
    """WATCH requests: replay, live events, bookmarks, timeouts and 410."""

    @defer.inlineCallbacks
    def test_watch_from_list_version_sees_changes_in_order(self):
        core = self.core()
        listed = yield deferToThread(core.list_service_for_all_namespaces)
        events = yield self.open_watch(core.list_service_for_all_namespaces,
                                       resource_version=listed.metadata.resource_version)
        self.add_services("web")
        self.api.service("default", "web", cluster_ips=["10.0.0.9"])
        self.api.delete("services", "default", "web")
        seen = yield deferToThread(events.read, 3)
        self.assertEqual(names(seen), [("ADDED", "web"), ("MODIFIED", "web"), ("DELETED", "web")])
        versions = [int(event["object"]["metadata"]["resourceVersion"]) for event in seen]
        self.assertEqual(versions, sorted(versions))
        self.assertEqual(versions[-1], self.api.resource_version)
        self.assertEqual(seen[1]["object"]["spec"]["clusterIP"], "10.0.0.9")

    @defer.inlineCallbacks
    def test_service_status_is_a_modification(self):
        """A Service's LoadBalancer status set as its controller sets it: one MODIFIED with the ingress,
        the spec unchanged; a Service that does not exist has no status to set."""
        self.api.service("default", "lb", cluster_ips=["10.0.0.9"], type="LoadBalancer")
        core = self.core()
        listed = yield deferToThread(core.list_service_for_all_namespaces)
        events = yield self.open_watch(core.list_service_for_all_namespaces,
                                       resource_version=listed.metadata.resource_version)
        self.api.service_status("default", "lb", ["192.0.2.1", "lb.example.net"])
        (seen,) = yield deferToThread(events.read, 1)
        self.assertEqual((seen["type"], seen["object"]["status"], seen["object"]["spec"]["clusterIP"]),
                         ("MODIFIED", {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"},
                                                                   {"hostname": "lb.example.net"}]}}, "10.0.0.9"))
        self.assertRaises(KeyError, self.api.service_status, "default", "missing", ["192.0.2.1"])

    @defer.inlineCallbacks
    def test_watch_without_version_starts_with_current_objects(self):
        self.add_services("a", "b")
        events = yield self.open_watch(self.core().list_service_for_all_namespaces)
        seen = yield deferToThread(events.read, 2)
        self.assertEqual(names(seen), [("ADDED", "a"), ("ADDED", "b")])

    @defer.inlineCallbacks
    def test_resume_does_not_replay_earlier_events(self):
        self.add_services("a")
        after_a = str(self.api.resource_version)
        self.api.service("default", "b")
        events = yield self.open_watch(self.core().list_namespaced_service, "default",
                                       resource_version=after_a)
        self.api.service("default", "c")
        seen = yield deferToThread(events.read, 2)
        self.assertEqual(names(seen), [("ADDED", "b"), ("ADDED", "c")])

    @defer.inlineCallbacks
    def test_watch_filters_namespace_and_labels(self):
        events = yield self.open_watch(self.core().list_namespaced_service, "a", label_selector="app=web",
                                       resource_version=str(self.api.resource_version))
        self.api.service("b", "other", labels={"app": "web"})
        self.api.service("a", "db", labels={"app": "db"})
        self.api.service("a", "web", labels={"app": "web"})
        self.api.service("a", "web", labels={"app": "retired"})
        seen = yield deferToThread(events.read, 2)
        self.assertEqual(names(seen), [("ADDED", "web"), ("DELETED", "web")])

    @defer.inlineCallbacks
    def test_bookmarks(self):
        self.add_services("a")
        events = yield self.open_watch(self.core().list_service_for_all_namespaces,
                                       allow_watch_bookmarks=True,
                                       resource_version=str(self.api.resource_version))
        [bookmark] = yield deferToThread(events.read, 1)
        self.assertEqual(bookmark["type"], "BOOKMARK")
        self.assertEqual(bookmark["object"]["metadata"], {"resourceVersion": str(self.api.resource_version)})

    @defer.inlineCallbacks
    def test_watch_stream_as_models_until_timeout(self):
        start = str(self.api.resource_version)
        self.add_services("a", "b")
        core = self.core()

        def stream():
            events = watch.Watch().stream(core.list_namespaced_service, "default",
                                          resource_version=start, timeout_seconds=1)
            return [(event["type"], event["object"].metadata.name) for event in events]

        seen = yield deferToThread(stream)
        self.assertEqual(seen, [("ADDED", "a"), ("ADDED", "b")])
        self.assertEqual(self.api.open_watches, 0)

    @defer.inlineCallbacks
    def test_expired_version_is_an_error_event(self):
        old = str(self.api.resource_version)
        self.add_services("a")
        self.api.expire_history()
        events = yield self.open_watch(self.core().list_service_for_all_namespaces, resource_version=old)
        seen = yield deferToThread(events.read_to_end)
        self.assertEqual([event["type"] for event in seen], ["ERROR"])
        self.assertEqual((seen[0]["object"]["code"], seen[0]["object"]["reason"]), (410, "Expired"))

    @defer.inlineCallbacks
    def test_watch_stream_raises_gone_after_its_retry(self):
        old = str(self.api.resource_version)
        self.add_services("a")
        self.api.expire_history()
        core = self.core()
        stream = watch.Watch().stream(core.list_service_for_all_namespaces, resource_version=old)
        failure = yield self.assertFailure(deferToThread(list, stream), ApiException)
        self.assertEqual(failure.status, 410)
        self.assertEqual(self.api.counts["watch", "services"], 2)

    @defer.inlineCallbacks
    def test_drop_watches_breaks_the_connection(self):
        events = yield self.open_watch(self.core().list_service_for_all_namespaces,
                                       resource_version=str(self.api.resource_version))
        self.api.drop_watches()
        yield self.assertFailure(deferToThread(events.read, 1), urllib3.exceptions.ProtocolError)
        self.assertEqual(self.api.open_watches, 0)

    @defer.inlineCallbacks
    def test_many_watches_and_clients_closing_them(self):
        core = self.core()
        version = str(self.api.resource_version)
        readers = yield defer.gatherResults([
            self.open_watch(core.list_service_for_all_namespaces, resource_version=version) for _ in range(12)
        ])
        self.add_services("a")
        seen = yield defer.gatherResults([deferToThread(reader.read, 1) for reader in readers])
        self.assertEqual({names(events)[0] for events in seen}, {("ADDED", "a")})
        self.assertEqual(self.api.open_watches, 12)
        yield defer.gatherResults([deferToThread(reader.response.close) for reader in readers])
        yield wait_until(lambda: self.api.open_watches == 0, "every watch closed")


class ShortHistoryTests(ApiServerTestCase):
    """A server that keeps only its last two events."""

    server_options = {"history_size": 2}

    @defer.inlineCallbacks
    def test_history_keeps_only_the_last_events(self):
        first = str(self.api.resource_version)
        self.add_services("a", "b", "c")
        core = self.core()
        expired = yield self.open_watch(core.list_service_for_all_namespaces, resource_version=first)
        kept = yield self.open_watch(core.list_service_for_all_namespaces,
                                     resource_version=str(int(first) + 1))
        self.assertEqual([event["type"] for event in (yield deferToThread(expired.read_to_end))], ["ERROR"])
        self.assertEqual(names((yield deferToThread(kept.read, 2))), [("ADDED", "b"), ("ADDED", "c")])


class FaultTests(ApiServerTestCase):
    """Injected HTTP errors, stalls and a server that goes away."""

    @defer.inlineCallbacks
    def test_fail_with(self):
        self.api.fail_with(500, count=1)
        core = self.core()
        failure = yield self.assertFailure(deferToThread(core.list_service_for_all_namespaces), ApiException)
        listed = yield deferToThread(core.list_service_for_all_namespaces)
        self.assertEqual((failure.status, json.loads(failure.body)["reason"]), (500, "InternalError"))
        self.assertEqual(listed.items, [])

    @defer.inlineCallbacks
    def test_fail_with_retry_after(self):
        self.api.fail_with(429, count=1, retry_after=3)
        pool = urllib3.PoolManager(retries=False)  # by default urllib3 itself obeys Retry-After
        response = yield deferToThread(pool.request, "GET", self.url + "/api/v1/pods")
        self.assertEqual((response.status, response.headers["Retry-After"]), (429, "3"))

    @defer.inlineCallbacks
    def test_forbid_one_resource(self):
        self.api.forbid("services")
        core = self.core()
        failure = yield self.assertFailure(deferToThread(core.list_service_for_all_namespaces), ApiException)
        pods = yield deferToThread(core.list_pod_for_all_namespaces)
        self.assertEqual((failure.status, json.loads(failure.body)["reason"]), (403, "Forbidden"))
        self.assertIn('cannot list resource "services" in API group ""', json.loads(failure.body)["message"])
        self.assertEqual(pods.items, [])
        self.api.forbid("services", False)
        services = yield deferToThread(core.list_service_for_all_namespaces)
        self.assertEqual(services.items, [])

    @defer.inlineCallbacks
    def test_stall_holds_requests(self):
        self.api.stall(0.5)
        core = self.core()
        yield self.assertFailure(
            deferToThread(core.list_service_for_all_namespaces, _request_timeout=0.05),
            urllib3.exceptions.MaxRetryError,
        )
        started = reactor.seconds()
        listed = yield deferToThread(core.list_service_for_all_namespaces)
        self.assertGreater(reactor.seconds() - started, 0.1)
        self.assertEqual(listed.items, [])

    @defer.inlineCallbacks
    def test_go_down_and_come_back_on_the_same_port(self):
        core = self.core(retries=False)
        yield deferToThread(core.list_service_for_all_namespaces)
        yield self.api.go_down()
        failure = yield self.assertFailure(deferToThread(core.list_service_for_all_namespaces),
                                           urllib3.exceptions.NewConnectionError)
        self.api.come_back()
        listed = yield deferToThread(core.list_service_for_all_namespaces)
        self.assertIn("Connection refused", str(failure))
        self.assertEqual(listed.items, [])
        self.assertEqual(self.api.counts["list", "services"], 2)

    @defer.inlineCallbacks
    def test_restarted_server_has_no_history_to_resume_from(self):
        old = str(self.api.resource_version)
        self.add_services("a")
        yield self.api.go_down()
        self.api.come_back(restarted=True)
        events = yield self.open_watch(self.core().list_service_for_all_namespaces, resource_version=old)
        seen = yield deferToThread(events.read_to_end)
        self.assertEqual([(event["type"], event["object"]["code"]) for event in seen], [("ERROR", 410)])
        self.assertTrue(seen[0]["object"]["message"].startswith(f"too old resource version: {old} ("), seen)


class TLSTests(ApiServerTestCase):
    """HTTPS with a CA made for the test, and certificate rotation."""

    server_options = {"tls": True}

    def client_files(self, common_name="alice"):
        """Write the CA and a client key pair to a new directory; return their paths."""
        return self.api.ca.write_client_files(self.mktemp(), common_name)

    @defer.inlineCallbacks
    def test_server_certificate_is_verified(self):
        trusted = self.core(ssl_ca_cert=self.client_files().ca)
        untrusted = self.core(retries=False)
        listed = yield deferToThread(trusted.list_service_for_all_namespaces)
        listing = deferToThread(untrusted.list_service_for_all_namespaces)
        failure = yield self.assertFailure(listing, ApiException)
        self.assertIn("CERTIFICATE_VERIFY_FAILED", str(failure))
        self.assertTrue(self.url.startswith("https://127.0.0.1:"))
        self.assertEqual(listed.items, [])

    @defer.inlineCallbacks
    def test_rotated_certificate_from_the_same_ca(self):
        address = ("127.0.0.1", self.api.port)
        before = yield deferToThread(ssl.get_server_certificate, address)
        yield self.api.go_down()
        self.api.rotate_certificate()
        self.api.come_back()
        after = yield deferToThread(ssl.get_server_certificate, address)
        listed = yield deferToThread(self.core(ssl_ca_cert=self.client_files().ca).list_namespace)
        self.assertNotEqual(before, after)
        served = ssl.PEM_cert_to_DER_cert(self.api.serving.cert_pem.decode())
        self.assertEqual(ssl.PEM_cert_to_DER_cert(after), served)
        self.assertEqual(listed.items, [])


class ClientCertificateTests(ApiServerTestCase):
    """A server that requires a client certificate signed by its CA."""

    server_options = {"tls": True, "require_client_cert": True}

    @defer.inlineCallbacks
    def test_client_certificate_required(self):
        files = self.api.ca.write_client_files(self.mktemp(), "alice")
        anonymous = self.core(ssl_ca_cert=files.ca, retries=False)
        alice = self.core(ssl_ca_cert=files.ca, cert_file=files.cert, key_file=files.key)
        # The client reports the TLS alert as ApiException(0), or a reset as ProtocolError.
        yield self.assertFailure(deferToThread(anonymous.list_service_for_all_namespaces),
                                 ApiException, urllib3.exceptions.ProtocolError)
        self.assertEqual(self.api.counts, {})
        yield deferToThread(alice.list_service_for_all_namespaces)
        self.assertEqual(self.api.last.client_cn, "alice")


class TokenTests(ApiServerTestCase):
    """A server that requires a bearer token."""

    server_options = {"token": "s3cret"}

    @defer.inlineCallbacks
    def test_token_required(self):
        anonymous = self.core()
        holder = self.core(api_key={"authorization": "s3cret"}, api_key_prefix={"authorization": "Bearer"})
        failure = yield self.assertFailure(deferToThread(anonymous.list_namespace), ApiException)
        yield deferToThread(holder.list_namespace)
        self.assertEqual(failure.status, 401)
        self.assertEqual(self.api.last.headers["authorization"], "Bearer s3cret")


class KubeconfigTests(unittest.TestCase):
    """Kubeconfig files written by L{ApiServer.write_kubeconfig} load with the real loader."""

    timeout = 20

    def start(self, **options):
        """Start an HTTPS ApiServer, stopped at cleanup."""
        api = ApiServer(tls=True, **options)
        api.start()
        self.addCleanup(api.stop)
        return api

    @defer.inlineCallbacks
    def test_two_clusters_in_one_kubeconfig(self):
        alpha, beta = self.start(require_client_cert=True), self.start(token="t0k3n")
        path = os.path.join(self.mktemp(), "kubeconfig")
        os.makedirs(os.path.dirname(path))
        alpha.write_kubeconfig(path, context="alpha", client_cn="alice")
        beta.write_kubeconfig(path, context="beta", token="t0k3n", inline=False)
        alpha_listed = yield deferToThread(self.list_namespaces, path, "alpha")
        beta_listed = yield deferToThread(self.list_namespaces, path, "beta")
        self.assertEqual((alpha_listed, beta_listed), ([], []))
        self.assertEqual(alpha.last.client_cn, "alice")
        self.assertEqual(beta.last.headers["authorization"], "Bearer t0k3n")
        self.assertTrue(os.path.exists(os.path.join(os.path.dirname(path), "beta-ca.crt")))

    def list_namespaces(self, path, context):
        """Load one context of the kubeconfig into a new Configuration and list namespaces."""
        configuration = client.Configuration()
        config.load_kube_config(config_file=path, context=context, client_configuration=configuration)
        with client.ApiClient(configuration) as api_client:
            return client.CoreV1Api(api_client).list_namespace().items


class ProtocolTests(ApiServerTestCase):
    """The answers of L{tests.protocol}, which a real kube-apiserver gives in L{tests.e2e.test_protocol}."""

    @defer.inlineCallbacks
    def test_answers_as_a_real_server(self):
        self.add_services("a", "b", namespace=protocol.NAMESPACE)
        pool = urllib3.PoolManager(retries=False)

        def get(path):
            response = pool.request("GET", self.url + path)
            return response.status, {name.lower(): value for name, value in response.headers.items()}, response.data

        failures = yield deferToThread(protocol.failed_checks, get)
        self.assertEqual(failures, [])
