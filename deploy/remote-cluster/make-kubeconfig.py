#!/usr/bin/env python3
# -*- test-case-name: tests.e2e.test_deploy -*-
"""
The kubeconfig through which kubernetai watches a cluster, made from what kustomization.yaml
here applied in it: that cluster's API server address and CA, and a token of the ServiceAccount
`kubernetai` (the long-lived one of the Secret `kubernetai-token`, or with --duration a bound
token from a TokenRequest, which expires). Run as the watched cluster's administrator, with the
kubernetes client that kubernetai installs:

    python3 deploy/remote-cluster/make-kubeconfig.py --context east --name east > east.kubeconfig
    kubectl -n kubernetai create secret generic kubernetai-kubeconfigs --from-file=east.kubeconfig

and a stanza `kubeconfig /var/run/secrets/kubernetai/east.kubeconfig` in the Corefile.
"""

from __future__ import annotations

import argparse
import base64
import sys
import time

import yaml
from kubernetes import client, config

NAMESPACE = "kubernetai"
SERVICE_ACCOUNT = "kubernetai"
TOKEN_SECRET = "kubernetai-token"
_SECRET_FILLED_WITHIN = 30.0


def kubeconfig(name: str, server: str, ca_pem: bytes, token: str) -> dict:
    """A kubeconfig of one context C{name}: C{server}, trusted through C{ca_pem}, with C{token}."""
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
    }


def secret_token(core: client.CoreV1Api) -> str:
    """The long-lived token the token controller writes into the Secret C{kubernetai-token}."""
    deadline = time.monotonic() + _SECRET_FILLED_WITHIN
    while True:
        data = core.read_namespaced_secret(TOKEN_SECRET, NAMESPACE).data or {}
        if "token" in data:
            return base64.b64decode(data["token"]).decode()
        if time.monotonic() > deadline:
            raise SystemExit(f"the Secret {NAMESPACE}/{TOKEN_SECRET} has no token yet: is it applied, "
                             "and does the cluster run its token controller? Else use --duration")
        time.sleep(1)


def bound_token(core: client.CoreV1Api, seconds: int) -> str:
    """A token of the ServiceAccount from a TokenRequest, valid for C{seconds}."""
    request = core.create_namespaced_service_account_token(
        SERVICE_ACCOUNT, NAMESPACE, {"spec": {"expirationSeconds": seconds}})
    return request.status.token


def ca_certificate(settings: client.Configuration) -> bytes:
    """The CA the administrator's own kubeconfig trusts for this server."""
    if not settings.ssl_ca_cert:
        raise SystemExit("the administrator's kubeconfig names no certificate authority for this cluster")
    with open(settings.ssl_ca_cert, "rb") as pem:
        return pem.read()


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", help="the administrator's kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--context", help="its context for the watched cluster (default: the current one)")
    parser.add_argument("--name", default="remote", help="the cluster's name in the kubeconfig made")
    parser.add_argument("--server", help="the API server's address as kubernetai reaches it (default: the admin's)")
    parser.add_argument("--duration", type=int, metavar="SECONDS",
                        help="a bound token valid this long, instead of the Secret's long-lived one")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    settings = client.Configuration()
    config.load_kube_config(config_file=arguments.kubeconfig, context=arguments.context,
                            client_configuration=settings, persist_config=False)
    core = client.CoreV1Api(client.ApiClient(settings))
    token = bound_token(core, arguments.duration) if arguments.duration else secret_token(core)
    made = kubeconfig(arguments.name, arguments.server or settings.host, ca_certificate(settings), token)
    yaml.safe_dump(made, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
