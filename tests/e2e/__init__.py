"""
kubernetai against a real kube-apiserver and etcd: see L{tests.e2e.support} for how the tests
run and skip, L{tests.e2e.controlplane} for the servers, and tests/e2e/build-apiserver.sh for
how the API server is built.
"""
