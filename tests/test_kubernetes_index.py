"""
Reduced objects and the index: what is kept of the API server's JSON, and
how batches of changes become consistent, immutable snapshots.
"""

from twisted.trial import unittest

from kubernetai.kubernetes.index import ReverseEntry, Store
from kubernetai.kubernetes.kinds import Kind
from kubernetai.kubernetes.objects import (
    NO_PORTS,
    Endpoint,
    Namespace,
    Port,
    ServiceImport,
    reduce_endpoint_slice,
    reduce_multicluster_endpoint_slice,
    reduce_pod,
    reduce_service,
    reduce_service_import,
)
from kubernetai.apiserver.resources import make_multicluster_endpoint_slice, make_service, make_service_import

HTTP = {"name": "http", "port": 80}


def service_json(namespace, name, cluster_ips=("10.0.0.1",), service_type="ClusterIP", external_name=None):
    spec = {"type": service_type, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    if cluster_ips is not None:
        spec["clusterIP"] = cluster_ips[0] if cluster_ips else "None"
        spec["clusterIPs"] = list(cluster_ips) or ["None"]
    if external_name:
        spec["externalName"] = external_name
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec}


def slice_json(namespace, name, service, endpoints, address_type="IPv4"):
    return {
        "metadata": {"namespace": namespace, "name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def endpoint_json(ip, ready=True, hostname=None, pod=None):
    endpoint = {"addresses": [ip], "nodeName": "node-1", "zone": "zone-a"}
    if ready is not None:
        endpoint["conditions"] = {"ready": ready}
    if hostname:
        endpoint["hostname"] = hostname
    if pod:
        endpoint["targetRef"] = {"kind": "Pod", "name": pod, "namespace": "default"}
    return endpoint


class ReduceTests(unittest.SynchronousTestCase):
    def test_cluster_ip_dual_stack(self):
        service = reduce_service(service_json("default", "web", ("10.0.0.1", "fd00::1")))
        self.assertEqual(service.cluster_ips, ("10.0.0.1", "fd00::1"))
        self.assertEqual(service.ports, (Port("http", 80, "TCP"),))
        self.assertFalse(service.headless)

    def test_headless(self):
        service = reduce_service(service_json("default", "db", ()))
        self.assertEqual(service.cluster_ips, ())
        self.assertTrue(service.headless)

    def test_external_name(self):
        service = reduce_service(service_json("default", "ext", None, "ExternalName", "example.org"))
        self.assertEqual((service.external_name, service.cluster_ips, service.headless), ("example.org", (), False))

    def test_external_ips_and_load_balancer_ingress(self):
        """spec.externalIPs, and each ingress point's IP or else its host name (fully qualified, lower case);
        what is neither is left out."""
        raw = make_service("default", "lb", ["10.0.0.1"], [HTTP], type="LoadBalancer",
                           external_ips=["198.51.100.1", "not-an-ip"], ingress=["192.0.2.1", "LB.Example.NET"])
        raw["status"]["loadBalancer"]["ingress"] += [{"ip": "192.0.2.2", "hostname": "ignored.example"},
                                                     {"hostname": "bad..name"}, {"ports": []}, "junk"]
        service = reduce_service(raw)
        self.assertEqual((service.external_ips, service.ingress),
                         (("198.51.100.1",), ("192.0.2.1", "lb.example.net.", "192.0.2.2")))
        self.assertEqual(reduce_service(make_service("default", "web", ["10.0.0.2"])).ingress, ())

    def test_only_ready_endpoints_are_kept(self):
        raw = slice_json("default", "db-1", "db", [
            endpoint_json("10.1.0.1", ready=True, hostname="db-0", pod="db-0"),
            endpoint_json("10.1.0.2", ready=False),
            endpoint_json("10.1.0.3", ready=None),
        ])
        endpoint_slice = reduce_endpoint_slice(raw)
        self.assertEqual(endpoint_slice.service, "db")
        self.assertEqual([endpoint.addresses for endpoint in endpoint_slice.endpoints], [("10.1.0.1",), ("10.1.0.3",)])
        self.assertEqual(endpoint_slice.endpoints[0], Endpoint(("10.1.0.1",), "db-0", "node-1", "zone-a", "db-0",
                                                               (Port("http", 8080, "TCP"),)))

    def test_fqdn_slices_hold_no_addresses(self):
        endpoint_slice = reduce_endpoint_slice(slice_json("default", "x", "x", [endpoint_json("a.example")], "FQDN"))
        self.assertEqual(endpoint_slice.endpoints, ())

    def test_service_imports(self):
        clusterset = reduce_service_import(make_service_import("default", "web", ips=["10.9.0.1"], ports=[HTTP]))
        headless = reduce_service_import(make_service_import("default", "db", type="Headless"))
        self.assertEqual(clusterset, ServiceImport("default", "web", "ClusterSetIP", ("10.9.0.1",),
                                                   (Port("http", 80, "TCP"),)))
        self.assertFalse(clusterset.headless)
        self.assertEqual((headless.headless, headless.ips, headless.ports), (True, (), ()),
                         "an import without ports gets no placeholder port, unlike a Service")

    def test_multicluster_slices_name_their_import_and_cluster(self):
        raw = make_multicluster_endpoint_slice("default", "db-east", "db", "east", [
            {"addresses": ["10.2.0.1"], "hostname": "db-0"}, {"addresses": ["10.2.0.2"], "ready": False}])
        endpoint_slice = reduce_multicluster_endpoint_slice(raw)
        self.assertEqual((endpoint_slice.service, endpoint_slice.cluster), ("db", "east"))
        self.assertEqual([(e.addresses, e.hostname, e.ports) for e in endpoint_slice.endpoints],
                         [(("10.2.0.1",), "db-0", NO_PORTS)])
        self.assertIsNone(reduce_endpoint_slice(raw).service, "not a slice of any Service")

    def test_pod_ips_and_deletion(self):
        pod = {"metadata": {"namespace": "default", "name": "p"},
               "status": {"podIP": "10.2.0.1", "podIPs": [{"ip": "10.2.0.1"}, {"ip": "fd00::2"}]}}
        self.assertEqual(reduce_pod(pod).ips, ("10.2.0.1", "fd00::2"))
        pod["metadata"]["deletionTimestamp"] = "2026-11-25T00:00:00Z"
        self.assertEqual(reduce_pod(pod).ips, ())


class StoreTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.store = Store()

    def test_services_and_reverse(self):
        self.store.put(Kind.SERVICES, reduce_service(service_json("default", "web", ("10.0.0.1", "fd00::1"))))
        snapshot = self.store.publish()
        self.assertEqual(snapshot.service("default", "web").cluster_ips, ("10.0.0.1", "fd00::1"))
        self.assertEqual(snapshot.reverse["fd00::1"], (ReverseEntry("default", "web", None),))
        self.store.delete(Kind.SERVICES, ("default", "web"))
        after = self.store.publish()
        self.assertIsNone(after.service("default", "web"))
        self.assertEqual(after.reverse, {})
        self.assertIsNotNone(snapshot.service("default", "web"), "a published snapshot never changes")

    def test_external_reverse_follows_changes(self):
        """Each external IP and ingress IP maps to its services; a host name ingress does not."""
        self.store.put(Kind.SERVICES, reduce_service(make_service("default", "lb", ["10.0.0.1"], type="LoadBalancer",
                                                             ingress=["192.0.2.1", "lb.example.net"])))
        self.store.put(Kind.SERVICES, reduce_service(make_service("other", "ext", ["10.0.0.2"],
                                                             external_ips=["192.0.2.1"])))
        first = self.store.publish()
        self.assertEqual(dict(first.external_reverse), {"192.0.2.1": (("default", "lb"), ("other", "ext"))})
        self.store.put(Kind.SERVICES, reduce_service(make_service("default", "lb", ["10.0.0.1"], type="LoadBalancer",
                                                             ingress=["192.0.2.9"])))
        self.store.delete(Kind.SERVICES, ("other", "ext"))
        after = self.store.publish()
        self.assertEqual(dict(after.external_reverse), {"192.0.2.9": (("default", "lb"),)})
        self.assertEqual(len(first.external_reverse), 1, "a published snapshot never changes")

    def test_endpoints_merged_across_slices_without_duplicates(self):
        self.store.put(Kind.SERVICES, reduce_service(service_json("default", "db", ())))
        self.store.put(Kind.ENDPOINT_SLICES, reduce_endpoint_slice(slice_json("default", "db-a", "db", [
            endpoint_json("10.1.0.1", hostname="db-0"), endpoint_json("10.1.0.2")])))
        self.store.put(Kind.ENDPOINT_SLICES, reduce_endpoint_slice(slice_json("default", "db-b", "db", [
            endpoint_json("10.1.0.2"), endpoint_json("10.1.0.3")])))
        snapshot = self.store.publish()
        addresses = [endpoint.addresses[0] for endpoint in snapshot.endpoints_of("default", "db")]
        self.assertEqual(addresses, ["10.1.0.1", "10.1.0.2", "10.1.0.3"])
        self.assertEqual([entry.service for entry in snapshot.reverse["10.1.0.2"]], ["db"])
        self.assertEqual(snapshot.reverse["10.1.0.1"][0].endpoint.hostname, "db-0")

        self.store.delete(Kind.ENDPOINT_SLICES, ("default", "db-a"))
        snapshot = self.store.publish()
        addresses = [endpoint.addresses[0] for endpoint in snapshot.endpoints_of("default", "db")]
        self.assertEqual(addresses, ["10.1.0.2", "10.1.0.3"])
        self.assertNotIn("10.1.0.1", snapshot.reverse)

    def test_slice_moving_to_another_service(self):
        for name in ("a", "b"):
            self.store.put(Kind.SERVICES, reduce_service(service_json("default", name, ())))
        self.store.put(Kind.ENDPOINT_SLICES, reduce_endpoint_slice(slice_json("default", "s", "a", [endpoint_json("10.1.0.9")])))
        self.store.publish()
        self.store.put(Kind.ENDPOINT_SLICES, reduce_endpoint_slice(slice_json("default", "s", "b", [endpoint_json("10.1.0.9")])))
        snapshot = self.store.publish()
        self.assertEqual(snapshot.endpoints_of("default", "a"), ())
        self.assertEqual(len(snapshot.endpoints_of("default", "b")), 1)
        self.assertEqual([entry.service for entry in snapshot.reverse["10.1.0.9"]], ["b"])

    def test_endpoint_reverse_waits_for_its_service(self):
        self.store.put(Kind.ENDPOINT_SLICES, reduce_endpoint_slice(slice_json("default", "s", "late", [endpoint_json("10.1.0.7")])))
        self.assertNotIn("10.1.0.7", self.store.publish().reverse)
        self.store.put(Kind.SERVICES, reduce_service(service_json("default", "late", ())))
        self.assertEqual(self.store.publish().reverse["10.1.0.7"][0].service, "late")

    def test_replace_drops_what_the_list_no_longer_has(self):
        for name in ("keep", "gone"):
            self.store.put(Kind.SERVICES, reduce_service(service_json("default", name, (f"10.0.0.{len(name)}",))))
        self.store.publish()
        self.store.replace(Kind.SERVICES, [reduce_service(service_json("default", "keep", ("10.0.0.4",)))])
        snapshot = self.store.publish()
        self.assertEqual(sorted(snapshot.services), [("default", "keep")])
        self.assertEqual(sorted(snapshot.reverse), ["10.0.0.4"])

    def test_pods_by_ip(self):
        pod = {"metadata": {"namespace": "default", "name": "p"}, "status": {"podIP": "10.2.0.1"}}
        self.store.put(Kind.PODS, reduce_pod(pod))
        self.assertEqual([p.name for p in self.store.publish().pods_by_ip["10.2.0.1"]], ["p"])
        pod["status"]["podIP"] = "10.2.0.2"
        self.store.put(Kind.PODS, reduce_pod(pod))
        snapshot = self.store.publish()
        self.assertEqual(sorted(snapshot.pods_by_ip), ["10.2.0.2"])
        self.store.delete(Kind.PODS, ("default", "p"))
        self.assertEqual(self.store.publish().pods_by_ip, {})

    def test_namespaces(self):
        self.store.replace(Kind.NAMESPACES, [Namespace("a"), Namespace("b")])
        self.assertEqual(self.store.publish().namespaces, frozenset({"a", "b"}))
        self.store.delete(Kind.NAMESPACES, ("", "a"))
        self.assertEqual(self.store.publish().namespaces, frozenset({"b"}))

    def put_multicluster(self, namespace, name, service, cluster, *ips):
        raw = make_multicluster_endpoint_slice(namespace, name, service, cluster,
                                               [{"addresses": [ip]} for ip in ips], [HTTP])
        self.store.put(Kind.MULTICLUSTER_ENDPOINT_SLICES, reduce_multicluster_endpoint_slice(raw))

    def test_imports_and_their_slices_by_cluster(self):
        self.store.put(Kind.SERVICES, reduce_service(service_json("default", "db", ())))
        self.store.put(Kind.SERVICE_IMPORTS, reduce_service_import(make_service_import("default", "db", type="Headless")))
        self.put_multicluster("default", "db-west", "db", "west", "10.3.0.1")
        self.put_multicluster("default", "db-east", "db", "east", "10.2.0.1", "10.2.0.2")
        snapshot = self.store.publish()
        self.assertTrue(snapshot.service_import("default", "db").headless)
        self.assertEqual([(s.cluster, [e.addresses[0] for e in s.endpoints])
                          for s in snapshot.multicluster_slices_of("default", "db")],
                         [("east", ["10.2.0.1", "10.2.0.2"]), ("west", ["10.3.0.1"])])
        self.assertEqual(snapshot.endpoints_of("default", "db"), (), "never mixed with the Service's endpoints")
        self.assertEqual(snapshot.reverse, {}, "nor in the PTR table")
        self.assertEqual((snapshot.counts()["serviceimports"], snapshot.counts()["multicluster_endpoints"]), (1, 3))

        self.store.delete(Kind.MULTICLUSTER_ENDPOINT_SLICES, ("default", "db-east"))
        self.store.delete(Kind.SERVICE_IMPORTS, ("default", "db"))
        after = self.store.publish()
        self.assertIsNone(after.service_import("default", "db"))
        self.assertEqual([s.cluster for s in after.multicluster_slices_of("default", "db")], ["west"])
        self.assertEqual(len(snapshot.multicluster_slices_of("default", "db")), 2, "a published snapshot never changes")

    def test_replace_multicluster_kinds_in_one_namespace(self):
        self.put_multicluster("a", "web-east", "web", "east", "10.2.0.1")
        self.put_multicluster("b", "web-east", "web", "east", "10.2.0.9")
        self.store.publish()
        self.store.replace(Kind.MULTICLUSTER_ENDPOINT_SLICES, [], namespace="a")
        snapshot = self.store.publish()
        self.assertEqual(sorted(snapshot.multicluster_slices), [("b", "web")])

    def test_multicluster_zones_have_their_own_serial(self):
        self.store.put(Kind.SERVICES, reduce_service(service_json("default", "web")))
        self.store.publish(now=100)
        self.store.put(Kind.SERVICE_IMPORTS, reduce_service_import(make_service_import("default", "web", ips=["10.9.0.1"])))
        imported = self.store.publish(now=200)
        self.put_multicluster("default", "web-east", "web", "east", "10.2.0.1")
        sliced = self.store.publish(now=300)
        self.store.delete(Kind.SERVICES, ("default", "web"))
        deleted = self.store.publish(now=400)
        self.assertEqual([(s.modified, s.multicluster_modified) for s in (imported, sliced, deleted)],
                         [(100, 200), (100, 300), (400, 300)])
        self.assertIs(deleted.imports, sliced.imports, "unchanged import tables are shared")

    def test_unchanged_tables_are_shared(self):
        self.store.put(Kind.SERVICES, reduce_service(service_json("default", "web")))
        first = self.store.publish()
        second = self.store.publish()
        self.assertIs(first.services, second.services)
        self.assertEqual(second.generation, first.generation + 1)
