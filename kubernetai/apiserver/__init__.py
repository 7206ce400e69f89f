# -*- test-case-name: tests.test_apiserver -*-
"""
kubernetai's own Kubernetes API server: a small one, in Twisted, that speaks the list and
watch protocol of the real one to the unchanged official kubernetes client.

The test suite and the benchmarks run every stanza against it, and the demo
(L{kubernetai.demo}) serves two small clusters from it.  It is no replacement for a real
kube-apiserver: it keeps objects in memory, has no authorisation, and runs no controllers.

  - L{kubernetai.apiserver.server}: the server (HTTP or HTTPS, faults on demand);
  - L{kubernetai.apiserver.resources}: resource types, routing, selectors, object builders;
  - L{kubernetai.apiserver.tlsca}: a throw-away certificate authority and kubeconfig writer.
"""
