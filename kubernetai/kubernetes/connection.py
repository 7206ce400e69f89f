# -*- test-case-name: tests.test_kubernetes_connection,tests.test_kubernetes_watch -*-
"""
One API client per stanza, from its options, as CoreDNS's kubernetes plugin
chooses: a kubeconfig when given (its context, token, client certificate or
exec plugin, as the kubernetes client supports them), else the endpoint with
its optional client certificate and CA, else the pod's service account.
TLS is always verified.  Every stanza gets its own Configuration: the
client's default one is process-global.  Credentials follow their files
(L{RereadingApiClient}), so a rotated token or certificate needs no restart.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable
from urllib.parse import urlsplit

from kubernetes import client, config as kube_config
from kubernetes.client import rest
from twisted.logger import Logger

log = Logger(namespace="kubernetai.kubernetes.connection")

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# At most this often, before a request, a stanza's connection options are read again from their
# files (kubeconfig, token file, certificates, keys; the pod's ServiceAccount token): requests are
# rare (a watch's reconnect, a list's pages), and a rotation shows within this long of the next one.
REREAD_INTERVAL = 10.0


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


class RereadingApiClient(client.ApiClient):
    """An API client whose credentials follow their files.

    Before a request, once C{interval} seconds have passed since they were last read, C{load}
    reads the stanza's connection options again: a changed token applies from that request
    on; a changed server, certificate, key or CA from a new connection pool, so from the next
    connection (running watches keep theirs). A read that fails (a file half-written) keeps
    the credentials in use, with a warning. Called from watch threads only.
    """

    def __init__(self, settings: client.Configuration, load: Callable[[], client.Configuration],
                 interval: float = REREAD_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(configuration=settings)
        self._load = load
        self._interval = interval
        self._clock = clock
        self._read_at = clock()
        self._connection = connection_fingerprint(settings)
        self._lock = threading.Lock()

    def call_api(self, *args, **kwargs):
        self.reread_credentials()
        return super().call_api(*args, **kwargs)

    def reread_credentials(self) -> None:
        """Read the connection options again if C{interval} has passed; switch to them if they changed."""
        with self._lock:
            if self._clock() - self._read_at < self._interval:
                return
            self._read_at = self._clock()
            try:
                settings = self._load()
            except ConnectionSetupError as err:
                log.warn("{url}: keeping the credentials in use: {error}", url=public_url(self.configuration), error=err)
                return
            connection = connection_fingerprint(settings)
            if connection != self._connection:
                log.info("{url}: the server, certificates or keys changed; new connections use them",
                         url=public_url(settings))
                self.rest_client = rest.RESTClientObject(settings)
                self._connection = connection
            self.configuration = settings


def connection_fingerprint(settings: client.Configuration) -> tuple:
    """What a connection pool is made of: the server, and the bytes of the CA, certificate and key files."""
    return (settings.host, settings.tls_server_name, settings.verify_ssl,
            *(_file_bytes(path) for path in (settings.ssl_ca_cert, settings.cert_file, settings.key_file)))


def _file_bytes(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as pem:
            return pem.read()
    except OSError:
        return None


def api_client(stanza, interval: float = REREAD_INTERVAL, **connection) -> tuple[client.ApiClient, str]:
    """The stanza's API client, reading its credentials again as L{RereadingApiClient} says, and
    its server's public URL; C{connection} goes to L{configuration}."""
    settings = configuration(stanza, **connection)
    return RereadingApiClient(settings, lambda: configuration(stanza, **connection), interval), public_url(settings)


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
