# -*- test-case-name: tests.test_apiserver -*-
"""
A fake Kubernetes API server for tests, speaking the real list/watch protocol to the
unchanged official kubernetes client.

This module holds its state, the objects tests put and the faults they inject; how it answers a
request is L{kubernetai.apiserver.protocol}, its connections L{kubernetai.apiserver.connections}.
It runs in the test's reactor on 127.0.0.1 (HTTP or HTTPS), keeps objects as plain dicts
under one etcd-like resourceVersion counter, answers C{/readyz} as kube-apiserver does, and
lets tests inject faults: dropped watches, expired history, stalls, HTTP errors, a resource
the client is forbidden, and a server that goes away and comes back.

Checked against a real kube-apiserver v1.35 (L{tests.protocol}, asked of both servers),
and changed to answer as it does: C{resourceVersionMatch} without C{resourceVersion} is
422 Invalid (it was ignored); a list at a resourceVersion not reached yet is 504 Timeout
with Retry-After 1 and cause ResourceVersionTooLarge (it listed the present); an unknown
resource of a served group is a 404 Status without the path in its message, with empty
details, and a path outside the served groups a plain-text "404 page not found" (both were
one Status); C{/version} has v1.35's fields (emulation and minimum compatibility versions).
Found the same on both: list pages (continue, remainingItemCount, items without kind), the
410 of a watch resumed from before a restarted server's history (an ERROR event "too old
resource version: N (M)", reason Expired, then the end of the stream: L{come_back} with
C{restarted} now gives it, as a real server started again does), 401 and 400 Status bodies. Not like a real server, on purpose: bookmarks every C{bookmark_interval} (a real
one sends them about once a minute, and not at all on etcd without progress notifications,
such as Debian's 3.4); objects carry no managedFields; no authorisation, but a resource can be
made forbidden on demand, with the 403 a real server gives ('services is forbidden: User "..."
cannot list resource "services" ...').
"""

import collections
import copy
import time
import uuid
from dataclasses import dataclass

from twisted.internet import defer, ssl
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web import resource, server

from kubernetai.apiserver.resources import (
    Event,
    flag,
    load_balancer,
    make_endpoint_slice,
    make_multicluster_endpoint_slice,
    make_namespace,
    make_pod,
    make_service,
    make_service_import,
    resource_type,
    route,
)
from kubernetai.apiserver.connections import ConnectionTracker, SwappableContext
from kubernetai.apiserver.protocol import ListWatchProtocol
from kubernetai.apiserver.tlsca import CertificateAuthority, write_kubeconfig

@dataclass(frozen=True)
class Received:
    """What the server saw of one request."""

    verb: str
    resource: str
    namespace: str | None
    params: dict
    headers: dict
    client_cn: str | None
    at: float = 0.0


class ApiServer(ListWatchProtocol):
    """A Kubernetes API server on 127.0.0.1 for core/v1 services, pods, namespaces,
    discovery.k8s.io/v1 endpointslices and multicluster.x-k8s.io/v1alpha1 serviceimports;
    all methods must be called on the reactor thread."""

    def __init__(self, tls=False, require_client_cert=False, token=None, history_size=1000,
                 bookmark_interval=1.0, ca=None, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.token = token
        self.bookmark_interval = bookmark_interval
        self.counts = collections.Counter()
        self.received = collections.deque(maxlen=100)
        self.ca = (ca or CertificateAuthority()) if tls else None
        self.port = 0
        self.url = None
        self._reactor = reactor
        self._require_client_cert = require_client_cert
        self._tls_context = None
        if tls:
            self._tls_context = SwappableContext()
            self.rotate_certificate()
        self._objects = collections.defaultdict(dict)
        self._resource_version = 1
        self._history = collections.deque(maxlen=history_size)
        self._horizon = self._resource_version
        self._watches = set()
        self._continuations = {}
        self._failure = (500, 0, None)
        self._forbidden = set()
        self._stall_call = None
        self._held = {}
        # Raw items (anything JSON) added to every list of a kind by its plural: what no real server sends.
        self.list_extras = collections.defaultdict(list)
        site = server.Site(_ApiResource(self))
        # Tracking sits under TLS: wrapping the Site itself breaks ALPN negotiation.
        self._connections = ConnectionTracker(
            TLSMemoryBIOFactory(self._tls_context, False, site) if tls else site, reactor
        )
        self._listener = None

    # Lifecycle

    def start(self):
        """Listen on a random port of 127.0.0.1; return the base URL."""
        self._listen()
        self.port = self._listener.getHost().port
        self.url = f"{'https' if self.ca else 'http'}://127.0.0.1:{self.port}"
        return self.url

    def stop(self):
        """Stop listening, cut every connection and cancel every timer; return a Deferred."""
        if self._stall_call is not None and self._stall_call.active():
            self._stall_call.cancel()
        self._held.clear()
        return self.go_down()

    # Objects

    @property
    def resource_version(self):
        """The current resourceVersion, as an int."""
        return self._resource_version

    def add(self, kind, obj):
        """Store a new object and emit ADDED; return the stored copy."""
        resource_ = resource_type(kind)
        if _key(obj) in self._objects[resource_.plural]:
            raise KeyError(f"{resource_.kind} {_key(obj)} already exists")
        return self._commit(resource_, "ADDED", obj, None)

    def modify(self, kind, obj):
        """Replace an existing object and emit MODIFIED; return the stored copy."""
        resource_ = resource_type(kind)
        return self._commit(resource_, "MODIFIED", obj, self._objects[resource_.plural][_key(obj)])

    def put(self, kind, obj):
        """Add the object, or modify it if one with its namespace and name exists."""
        if _key(obj) in self._objects[resource_type(kind).plural]:
            return self.modify(kind, obj)
        return self.add(kind, obj)

    def delete(self, kind, namespace, name):
        """Remove an object (namespace None if cluster-scoped) and emit DELETED; return it."""
        resource_ = resource_type(kind)
        old = self._objects[resource_.plural].pop((namespace, name))
        self._resource_version += 1
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = str(self._resource_version)
        self._publish(Event(self._resource_version, resource_, "DELETED", gone))
        return copy.deepcopy(gone)

    def get(self, kind, namespace, name):
        """A copy of the stored object, or None."""
        return copy.deepcopy(self._objects[resource_type(kind).plural].get((namespace, name)))

    def service(self, *args, **kwargs):
        """Put a Service built by L{make_service} with these arguments."""
        return self.put("services", make_service(*args, **kwargs))

    def service_status(self, namespace, name, ingress=()):
        """Set a Service's LoadBalancer C{ingress} (IPs and host names), as a load-balancer controller
        does through the status subresource, and emit MODIFIED; return the stored copy."""
        service = self.get("services", namespace, name)
        if service is None:
            raise KeyError(f"Service {(namespace, name)} does not exist")
        service["status"] = load_balancer(ingress)
        return self.modify("services", service)

    def endpoint_slice(self, *args, **kwargs):
        """Put an EndpointSlice built by L{make_endpoint_slice} with these arguments."""
        return self.put("endpointslices", make_endpoint_slice(*args, **kwargs))

    def multicluster_endpoint_slice(self, *args, **kwargs):
        """Put an EndpointSlice built by L{make_multicluster_endpoint_slice} with these arguments."""
        return self.put("endpointslices", make_multicluster_endpoint_slice(*args, **kwargs))

    def service_import(self, *args, **kwargs):
        """Put a ServiceImport built by L{make_service_import} with these arguments."""
        return self.put("serviceimports", make_service_import(*args, **kwargs))

    def pod(self, *args, **kwargs):
        """Put a Pod built by L{make_pod} with these arguments."""
        return self.put("pods", make_pod(*args, **kwargs))

    def namespace(self, *args, **kwargs):
        """Put a Namespace built by L{make_namespace} with these arguments."""
        return self.put("namespaces", make_namespace(*args, **kwargs))

    # Faults

    def drop_watches(self):
        """Abort every open watch connection mid-stream."""
        watches, self._watches = self._watches, set()
        for watch in watches:
            watch.abort()

    def expire_history(self):
        """Forget the event history: resuming a watch from any older version gets 410."""
        self._history.clear()
        self._horizon = self._resource_version

    def stall(self, seconds):
        """Leave requests that arrive in the next C{seconds} unanswered until then."""
        if self._stall_call is not None and self._stall_call.active():
            self._stall_call.cancel()
        self._stall_call = self._reactor.callLater(seconds, self._end_stall)

    def fail_with(self, status_code, count=1, retry_after=None):
        """Answer the next C{count} requests with this HTTP error and a Status body (and a
        Retry-After header of C{retry_after} seconds, if given)."""
        self._failure = (status_code, count, retry_after)

    def forbid(self, resource_name, forbidden=True):
        """Answer every request for C{resource_name} (a plural, as C{services}) 403 Forbidden, as
        RBAC does for a client without a role for it; C{forbidden=False} lifts it."""
        (self._forbidden.add if forbidden else self._forbidden.discard)(resource_name)

    def go_down(self, keep_port=False):
        """Stop listening (connections are refused) and cut every open connection.

        With C{keep_port}, keep listening but close every new connection at once, as a load
        balancer in front of a dead API server does, and note when each came in L{cut_at}:
        refused connections leave no trace a test can count."""
        self.drop_watches()
        listener, self._listener = (None, self._listener) if keep_port else (self._listener, None)
        self._connections.cutting = keep_port
        stopped = defer.maybeDeferred(listener.stopListening) if listener else defer.succeed(None)
        self._connections.abort_all()
        return defer.gatherResults([stopped, self._connections.when_idle()])

    def come_back(self, restarted=False):
        """Serve again on the same port after L{go_down}; C{restarted}, as a kube-apiserver process
        started again does: its watch cache starts afresh, so a watch resumed from before gets 410."""
        if restarted:
            self.expire_history()
        self._connections.cutting = False
        if self._listener is None:
            self._listen(self.port)

    def rotate_certificate(self):
        """Serve new connections with a new certificate from the same CA."""
        self.serving = self.ca.issue_server()
        certificate = ssl.PrivateCertificate.loadPEM(self.serving.cert_pem + self.serving.key_pem)
        authorities = [ssl.Certificate.loadPEM(self.ca.cert_pem)] if self._require_client_cert else []
        self._tls_context.options = certificate.options(*authorities)

    # Observation

    @property
    def last(self):
        """The L{Received} record of the latest request."""
        return self.received[-1]

    @property
    def open_watches(self):
        """How many watch responses are streaming now."""
        return len(self._watches)

    @property
    def connections_accepted(self):
        """How many connections the server has accepted (and not cut at once) since it started."""
        return self._connections.accepted

    @property
    def cut_at(self):
        """When (reactor seconds) each connection cut at once by L{go_down}C{(keep_port=True)} came in."""
        return list(self._connections.cut_at)

    def write_kubeconfig(self, path, context="test", client_cn=None, token=None, inline=True):
        """Add a context named C{context} for this server to the kubeconfig at C{path}, with a
        new client certificate for C{client_cn} and/or a bearer C{token}; see L{write_kubeconfig}."""
        client = self.ca.issue_client(client_cn) if client_cn else None
        ca_pem = self.ca.cert_pem if self.ca else None
        write_kubeconfig(path, context, self.url, ca_pem, client, token, inline)

    # HTTP

    def handle_request(self, request):
        """Answer one HTTP GET request (called by the web resource)."""
        params = {key.decode(): values[-1].decode() for key, values in request.args.items()}
        target = route(request.path.decode())
        verb = ("watch" if flag(params.get("watch")) else "list") if target else "get"
        resource_name = target[0].plural if target else request.path.decode()
        self.counts[verb, resource_name] += 1
        namespace = target[1] if target else None
        self.received.append(Received(verb, resource_name, namespace, params, _headers(request),
                                      _client_cn(request), self._reactor.seconds()))
        if self._stall_call is not None and self._stall_call.active():
            self._held[request] = (target, params)
            request.notifyFinish().addErrback(lambda _: self._held.pop(request, None))
        else:
            self._answer(request, target, params)

    # Internals

    def _commit(self, resource_, event_type, obj, old):
        self._resource_version += 1
        stored = copy.deepcopy(obj)
        stored.update(kind=resource_.kind, apiVersion=resource_.api_version)
        metadata = stored["metadata"]
        previous = old["metadata"] if old else {}
        metadata["resourceVersion"] = str(self._resource_version)
        metadata.setdefault("uid", previous.get("uid") or str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", previous.get("creationTimestamp") or _now())
        self._objects[resource_.plural][_key(stored)] = stored
        self._publish(Event(self._resource_version, resource_, event_type, stored, old))
        return copy.deepcopy(stored)

    def _publish(self, event):
        if len(self._history) == self._history.maxlen:
            self._horizon = self._history[0].resource_version
        self._history.append(event)
        for watch in list(self._watches):
            watch.offer(event)

    def _end_stall(self):
        held, self._held = self._held, {}
        for request, (target, params) in held.items():
            self._answer(request, target, params)

    def _listen(self, port=0):
        self._listener = self._reactor.listenTCP(port, self._connections, interface="127.0.0.1")


class _ApiResource(resource.Resource):
    isLeaf = True

    def __init__(self, api_server):
        super().__init__()
        self._api_server = api_server

    def render_GET(self, request):
        self._api_server.handle_request(request)
        return server.NOT_DONE_YET


def _headers(request):
    return {name.decode().lower(): values[-1].decode()
            for name, values in request.requestHeaders.getAllRawHeaders()}


def _client_cn(request):
    peer_certificate = getattr(request.transport, "getPeerCertificate", None)
    certificate = peer_certificate() if peer_certificate else None
    return certificate.get_subject().CN if certificate is not None else None


def _key(obj):
    return obj["metadata"].get("namespace"), obj["metadata"]["name"]


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
