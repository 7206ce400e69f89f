# -*- test-case-name: tests.e2e.test_identities -*-
"""
The certificates of a throw-away control plane, made with the openssl command as an
operator would make them: a CA, the API server's serving certificate for 127.0.0.1, client
certificates whose subject is the user (CN) and its groups (O), and a service-account key.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

_DAYS = "2"
_CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Pair:
    """Paths of a PEM certificate and its key."""

    cert: str
    key: str


def openssl(*args: str) -> None:
    """Run openssl; its complaint, not a bare exit status, on failure."""
    result = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"openssl {args[0]}: {result.stderr.strip()}")


def make_ca(directory: str) -> Pair:
    """A self-signed CA in C{directory}/ca.crt, ca.key."""
    pair = Pair(os.path.join(directory, "ca.crt"), os.path.join(directory, "ca.key"))
    openssl("req", "-x509", *_CURVE, "-keyout", pair.key, "-out", pair.cert, "-days", _DAYS,
            "-subj", "/CN=kubernetai-e2e-ca", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return pair


def issue(ca: Pair, directory: str, stem: str, subject: str, extensions: list[str]) -> Pair:
    """A certificate for C{subject} ("/O=group/CN=name") signed by C{ca}, with these extension lines."""
    pair = Pair(os.path.join(directory, stem + ".crt"), os.path.join(directory, stem + ".key"))
    request, extension_file = pair.cert + ".csr", pair.cert + ".ext"
    with open(extension_file, "w") as ext:
        ext.write("\n".join([
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature",
            "subjectKeyIdentifier=hash",
            "authorityKeyIdentifier=keyid",
            *extensions,
        ]) + "\n")
    openssl("req", "-new", *_CURVE, "-keyout", pair.key, "-out", request, "-subj", subject)
    openssl("x509", "-req", "-in", request, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
            "-days", _DAYS, "-extfile", extension_file, "-out", pair.cert)
    return pair


def issue_server(ca: Pair, directory: str) -> Pair:
    """The API server's serving certificate, for 127.0.0.1 and localhost."""
    return issue(ca, directory, "apiserver", "/CN=kube-apiserver",
                 ["extendedKeyUsage=serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost"])


def issue_client(ca: Pair, directory: str, user: str, group: str | None = None) -> Pair:
    """A client certificate the API server reads as user C{user} in C{group}."""
    subject = (f"/O={group}" if group else "") + f"/CN={user}"
    return issue(ca, directory, user, subject, ["extendedKeyUsage=clientAuth"])


def make_signing_key(directory: str) -> Pair:
    """The key service-account tokens are signed with, and its public half (as C{cert})."""
    pair = Pair(os.path.join(directory, "service-account.pub"), os.path.join(directory, "service-account.key"))
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", pair.key)
    openssl("pkey", "-in", pair.key, "-pubout", "-out", pair.cert)
    return pair
