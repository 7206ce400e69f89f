# -*- test-case-name: tests.test_kubernetes_connection,tests.test_kubernetes_watch -*-
"""
One API client per stanza, from its options, as CoreDNS's kubernetes plugin
chooses: a kubeconfig when given (its context, token, client certificate or
exec plugin, as the kubernetes client supports them), else the endpoint with
its optional client certificate and CA, else the pod's service account.
TLS is always verified.  Every stanza gets its own Configuration: the
client's default one is process-global.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from kubernetes import client, config as kube_config

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class ConnectionSetupError(Exception):
    """The stanza's options do not lead to an API server (unreadable kubeconfig, no in-cluster env)."""


def configuration(stanza, service_account_dir: str = SERVICE_ACCOUNT_DIR, environ=os.environ) -> client.Configuration:
    """The client Configuration for one stanza's connection options."""
    settings = client.Configuration()
    try:
        if stanza.kubeconfig is not None:
            path, context = stanza.kubeconfig
            path = os.path.expanduser(path)
            _check_kubeconfig(path, context)
            kube_config.load_kube_config(
                config_file=path, context=context, client_configuration=settings, persist_config=False,
            )
        elif stanza.endpoint is not None:
            settings.host = stanza.endpoint.rstrip("/")
            if stanza.tls is not None:
                settings.cert_file, settings.key_file, settings.ssl_ca_cert = stanza.tls
        else:
            _check_in_cluster(service_account_dir, environ)
            loader = kube_config.incluster_config.InClusterConfigLoader(
                token_filename=os.path.join(service_account_dir, "token"),
                cert_filename=os.path.join(service_account_dir, "ca.crt"),
                environ=environ,
            )
            loader.load_and_set(settings)
    except (kube_config.ConfigException, OSError, ValueError) as err:
        raise ConnectionSetupError(f"cannot configure the connection to the API server: {err}") from None
    settings.verify_ssl = True
    # Our watch loop backs off and retries by itself; urllib3 must not retry quietly underneath it.
    settings.retries = False
    return settings


def _check_kubeconfig(path: str, context: str | None) -> None:
    """Refuse, in words a first-time user can act on, a kubeconfig that is missing or lacks C{context}."""
    if not os.path.exists(path):
        raise kube_config.ConfigException(f"kubeconfig {path}: no such file")
    if context is None:
        return
    try:
        contexts, _ = kube_config.list_kube_config_contexts(config_file=path)
    except kube_config.ConfigException:
        return  # load_kube_config says what is wrong with the file itself
    names = [entry.get("name") for entry in contexts or ()]
    if context not in names:
        there = ", ".join(repr(name) for name in names) if names else "none"
        raise kube_config.ConfigException(f"kubeconfig {path} has no context {context!r}; its contexts: {there}")


def _check_in_cluster(service_account_dir: str, environ) -> None:
    """Refuse a stanza without endpoint or kubeconfig when this process is not in a pod."""
    if environ.get("KUBERNETES_SERVICE_HOST") and environ.get("KUBERNETES_SERVICE_PORT"):
        return
    raise kube_config.ConfigException(
        "no 'endpoint' or 'kubeconfig' in this stanza, and not running in a pod (KUBERNETES_SERVICE_HOST "
        "is not set): add 'kubeconfig FILE [CONTEXT]' or 'endpoint URL' to the stanza"
    )


def api_client(settings: client.Configuration) -> client.ApiClient:
    return client.ApiClient(configuration=settings)


def readyz(api: client.ApiClient, timeout: tuple[float, float]):
    """GET C{/readyz} with the stanza's credentials (kube-apiserver lets every client read it);
    the response, read, whatever its status; the client's exception if the server does not answer."""
    method, url, headers, body, post = api.param_serialize("GET", "/readyz", auth_settings=["BearerToken"])
    response = api.call_api(method, url, headers, body, post, _request_timeout=timeout)
    response.read()
    return response


def public_url(settings: client.Configuration) -> str:
    """The API server's URL without credentials, for /ready and logs."""
    parts = urlsplit(settings.host)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
