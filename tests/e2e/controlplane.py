# -*- test-case-name: tests.e2e.test_outage -*-
"""
A real Kubernetes control plane on 127.0.0.1 for the end-to-end tests: etcd and the
kube-apiserver that tests/e2e/build-apiserver.sh builds, in a temporary directory, on free
ports, with certificates made by openssl (L{tests.e2e.pki}) and C{--authorization-mode=RBAC}.
No controller runs: tests make EndpointSlices and set pods' IPs themselves.

Once it is ready, L{tests.e2e.identities} gives it the identities the tests use and writes
their kubeconfigs.  To keep one up by hand (Ctrl-C stops it):

    .venv/bin/python -m tests.e2e.controlplane
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass

from tests.e2e import pki
from tests.test_daemon import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
BINARY_VARIABLE = "KUBERNETAI_E2E_APISERVER"
# Both families, so that dual-stack Services can be made; 10.0.0.1 is the `kubernetes` Service's.
SERVICE_RANGES = "10.0.0.0/16,fd00:10::/108"
_READY_WITHIN = 90.0


def kubernetes_version() -> str:
    """The k8s.io/kubernetes version the module of tests/e2e/apiserver/ requires."""
    with open(os.path.join(HERE, "apiserver", "go.mod")) as go_mod:
        match = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes (v[0-9.]+)", go_mod.read(), re.M)
    return match.group(1)


def cached_binary() -> str:
    """Where tests/e2e/build-apiserver.sh leaves the kube-apiserver of that version."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "kubernetai", f"kube-apiserver-{kubernetes_version()}")


def apiserver_binary() -> str:
    """The kube-apiserver to run: $KUBERNETAI_E2E_APISERVER, else the cached build."""
    return os.environ.get(BINARY_VARIABLE) or cached_binary()


def missing() -> str | None:
    """Why the control plane cannot start here, on one line saying how to enable it; None if it can."""
    absent = [name for name in ("etcd", "openssl") if shutil.which(name) is None]
    if not os.access(apiserver_binary(), os.X_OK):
        absent.insert(0, f"kube-apiserver ({apiserver_binary()})")
    if not absent:
        return None
    return (f"end-to-end tests need {', '.join(absent)}: run tests/e2e/build-apiserver.sh "
            f"(Go, and root for apt-get install etcd-server) or set {BINARY_VARIABLE}")


@dataclass(frozen=True)
class Files:
    """The certificates and keys of one control plane."""

    ca: pki.Pair
    serving: pki.Pair
    admin: pki.Pair
    signing_key: pki.Pair


def make_files(directory: str) -> Files:
    """Every certificate and key the control plane and its admin need, made with openssl."""
    ca = pki.make_ca(directory)
    return Files(ca, pki.issue_server(ca, directory), pki.issue_client(ca, directory, "e2e-admin", "system:masters"),
                 pki.make_signing_key(directory))


def die_with_parent():
    """In a child process (C{preexec_fn}): die with the test process, so that no server outlives a killed run."""
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class ControlPlane:
    """etcd and kube-apiserver, started and stopped as processes; the API server can be stopped
    and started again on the same port."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="kubernetai-e2e-")
        self.files = make_files(self.directory)
        self.etcd_url = f"http://127.0.0.1:{free_port()}"
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.etcd: subprocess.Popen | None = None
        self.apiserver: subprocess.Popen | None = None

    def start(self) -> None:
        """Start etcd, then the API server; return once C{/readyz} says ready."""
        peer = f"http://127.0.0.1:{free_port()}"
        self.etcd = self._spawn("etcd", [
            "etcd", "--name", "e2e", "--data-dir", os.path.join(self.directory, "etcd"),
            "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", f"e2e={peer}",
        ])
        self._wait(lambda: _get(self.etcd_url + "/health").get("health") == "true", self.etcd, "etcd")
        self.start_apiserver()

    def start_apiserver(self) -> None:
        """Start the API server (again) on its port; return once it is ready."""
        files = self.files
        self.apiserver = self._spawn("kube-apiserver", [
            apiserver_binary(),
            "--etcd-servers", self.etcd_url,
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", str(self.port),
            "--tls-cert-file", files.serving.cert, "--tls-private-key-file", files.serving.key,
            "--client-ca-file", files.ca.cert,
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", files.signing_key.cert,
            "--service-account-signing-key-file", files.signing_key.key,
            "--authorization-mode", "RBAC",
            "--service-cluster-ip-range", SERVICE_RANGES,
            # Pods name no service account the ServiceAccount admission plugin could find: no controller makes one.
            "--disable-admission-plugins", "ServiceAccount",
            "--etcd-compaction-interval", "0",  # the tests compact when they mean to
            "--endpoint-reconciler-type", "none",  # it would publish 127.0.0.1, which Endpoints refuse
            "--profiling=false",
        ])
        self._wait(self._ready, self.apiserver, "kube-apiserver")

    def stop_apiserver(self) -> None:
        """Stop the API server process (SIGTERM, then SIGKILL) and wait for it to end."""
        end_process(self.apiserver)

    def compact(self) -> int:
        """Compact etcd's history up to its current revision, as the API server does every 5 minutes; the revision."""
        revision = int(_post(self.etcd_url + "/v3/kv/range", {"key": _b64("/")})["header"]["revision"])
        _post(self.etcd_url + "/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def stop(self) -> None:
        """Stop both processes and remove the directory."""
        end_process(self.apiserver)
        end_process(self.etcd)
        shutil.rmtree(self.directory, ignore_errors=True)

    def admin_context(self) -> ssl.SSLContext:
        """A TLS context with the admin's client certificate, for raw HTTP requests."""
        context = ssl.create_default_context(cafile=self.files.ca.cert)
        context.load_cert_chain(self.files.admin.cert, self.files.admin.key)
        return context

    def log(self, name: str) -> str:
        """What a process (etcd or kube-apiserver) wrote so far."""
        with open(os.path.join(self.directory, name + ".log"), errors="replace") as text:
            return text.read()

    def _ready(self) -> bool:
        request = urllib.request.Request(self.url + "/readyz")
        try:
            with urllib.request.urlopen(request, context=self.admin_context(), timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        output = open(os.path.join(self.directory, name + ".log"), "a")
        with output:
            return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    preexec_fn=die_with_parent)

    def _wait(self, ready, process: subprocess.Popen, name: str) -> None:
        deadline = time.monotonic() + _READY_WITHIN
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                tail = self.log(name)[-3000:]
                raise RuntimeError(f"{name} did not become ready (exit {process.poll()}):\n{tail}")
            time.sleep(0.2)


def end_process(process: subprocess.Popen | None) -> None:
    """SIGTERM (a clean stop), then SIGKILL after 20 s; return once it has ended."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _get(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.load(response)
    except OSError:
        return {}


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def main() -> None:
    """Start a control plane with its identities, print where its kubeconfigs are, and wait."""
    from tests.e2e.identities import Identities

    reason = missing()
    if reason:
        sys.exit(reason)
    plane = ControlPlane()
    try:
        plane.start()
        identities = Identities.make(plane)
        print(f"kube-apiserver {plane.url}; kubeconfigs:")
        for name, path in identities.kubeconfigs().items():
            print(f"  {name}: {path}")
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        plane.stop()


if __name__ == "__main__":
    main()
