# -*- test-case-name: tests.e2e.test_identities -*-
"""
Who talks to the end-to-end control plane, and their kubeconfigs: the admin (a client
certificate in system:masters); a ServiceAccount token (a TokenRequest) and a client
certificate user, both bound to the ClusterRole of deploy/kubernetes/rbac.yaml; the same
token again through an C{exec} credential plugin (L{tests.e2e.exec_credential}); and a
ServiceAccount bound to nothing.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

import yaml
from kubernetes import client, config

from tests.e2e import pki

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RBAC = os.path.join(REPO, "deploy", "kubernetes", "rbac.yaml")
EXEC_CREDENTIAL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exec_credential.py")
SYSTEM_NAMESPACE = "kubernetai-system"
CERT_USER = "kubernetai-cert"
_TOKEN_SECONDS = 3600


def kubeconfig(server: str, ca: str, user: dict) -> dict:
    """A kubeconfig of one context, for C{server} trusted through C{ca}, as C{user} (a kubeconfig user entry)."""
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "e2e",
        "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority": ca}}],
        "users": [{"name": "e2e", "user": user}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "e2e"}}],
    }


def write_json(path: str, document: dict) -> str:
    """Write C{document} (JSON is YAML, as kubeconfigs are) to C{path}, readable by its owner only; the path."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        json.dump(document, out, indent=1)
    return path


def exec_user(token_file: str) -> dict:
    """A kubeconfig user whose token comes from the exec plugin of the tests."""
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
                     "args": [EXEC_CREDENTIAL, token_file], "interactiveMode": "Never"}}


def admin_client(path: str) -> client.ApiClient:
    """An API client for the kubeconfig at C{path}."""
    return config.new_client_from_config(config_file=path)


@dataclass
class Identities:
    """The kubeconfig of each identity, and the secrets the logs must never show."""

    directory: str
    admin: str
    token: str
    cert: str
    exec: str
    no_rights: str
    secrets: tuple[str, ...]

    @classmethod
    def make(cls, plane) -> "Identities":
        """Apply deploy/kubernetes/rbac.yaml, make the identities, write their kubeconfigs."""
        directory, files = plane.directory, plane.files
        ca = files.ca.cert
        admin = write_json(os.path.join(directory, "admin.kubeconfig"), kubeconfig(
            plane.url, ca, {"client-certificate": files.admin.cert, "client-key": files.admin.key}))
        api = admin_client(admin)
        role = apply_cluster_role(api)
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": SYSTEM_NAMESPACE}})
        token = service_account_token(core, "kubernetai")
        nobody = service_account_token(core, "nobody")
        bind(api, role, [
            {"kind": "ServiceAccount", "name": "kubernetai", "namespace": SYSTEM_NAMESPACE},
            {"kind": "User", "name": CERT_USER, "apiGroup": "rbac.authorization.k8s.io"},
        ])
        cert = pki.issue_client(files.ca, directory, CERT_USER)
        token_file = os.path.join(directory, "kubernetai.token")
        with open(os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as out:
            out.write(token)
        with open(files.signing_key.key) as key, open(cert.key) as cert_key:
            secrets = (token, nobody, _pem_body(key.read()), _pem_body(cert_key.read()))
        return cls(
            directory=directory,
            admin=admin,
            token=write_json(os.path.join(directory, "token.kubeconfig"), kubeconfig(plane.url, ca, {"token": token})),
            cert=write_json(os.path.join(directory, "cert.kubeconfig"), kubeconfig(
                plane.url, ca, {"client-certificate": cert.cert, "client-key": cert.key})),
            exec=write_json(os.path.join(directory, "exec.kubeconfig"), kubeconfig(plane.url, ca, exec_user(token_file))),
            no_rights=write_json(os.path.join(directory, "no-rights.kubeconfig"),
                                 kubeconfig(plane.url, ca, {"token": nobody})),
            secrets=secrets,
        )

    def kubeconfigs(self) -> dict[str, str]:
        """Each identity's name and kubeconfig path."""
        return {name: getattr(self, name) for name in ("admin", "token", "cert", "exec", "no_rights")}


def apply_cluster_role(api: client.ApiClient) -> str:
    """Create the ClusterRole of deploy/kubernetes/rbac.yaml; its name."""
    with open(RBAC) as rbac:
        (role,) = [document for document in yaml.safe_load_all(rbac) if document]
    client.RbacAuthorizationV1Api(api).create_cluster_role(role)
    return role["metadata"]["name"]


def bind(api: client.ApiClient, role: str, subjects: list[dict]) -> None:
    """Bind the ClusterRole C{role} to C{subjects} cluster-wide."""
    client.RbacAuthorizationV1Api(api).create_cluster_role_binding({
        "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })


def service_account_token(core: client.CoreV1Api, name: str) -> str:
    """Make ServiceAccount C{name} in the system namespace; a token of it from a TokenRequest."""
    core.create_namespaced_service_account(SYSTEM_NAMESPACE, {"metadata": {"name": name}})
    request = core.create_namespaced_service_account_token(
        name, SYSTEM_NAMESPACE, {"spec": {"expirationSeconds": _TOKEN_SECONDS}})
    return request.status.token


def _pem_body(pem: str) -> str:
    """The base64 of a PEM block, without its armour: what a log that leaked the key would show."""
    return "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
