# -*- test-case-name: tests.test_apiserver -*-
"""
A throw-away certificate authority for tests: it issues server certificates for
127.0.0.1/localhost and client certificates whose common name a server can read back,
and writes the kubeconfig files that carry them to a kubernetes client.
"""

import base64
import datetime
import ipaddress
import json
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_NAMES = ("127.0.0.1", "localhost")
_VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its PEM private key."""

    cert_pem: bytes
    key_pem: bytes

    def write(self, directory, stem):
        """Write C{stem}.crt and C{stem}.key into C{directory}; return both paths."""
        cert_path = _write(os.path.join(directory, stem + ".crt"), self.cert_pem)
        key_path = _write(os.path.join(directory, stem + ".key"), self.key_pem)
        return cert_path, key_path


@dataclass(frozen=True)
class ClientFiles:
    """Paths a kubernetes client C{Configuration} needs for mutual TLS."""

    ca: str
    cert: str
    key: str


class CertificateAuthority:
    """A self-signed CA that signs server and client certificates."""

    def __init__(self, common_name="kubernetai test CA"):
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = _name(common_name)
        builder = _builder(name, name, self._key.public_key())
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        builder = builder.add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        self._certificate = builder.sign(self._key, hashes.SHA256())
        self.cert_pem = self._certificate.public_bytes(serialization.Encoding.PEM)

    def issue_server(self, hosts=LOOPBACK_NAMES):
        """Issue a serving certificate valid for the given IP addresses and DNS names."""
        names = [_subject_alt_name(host) for host in hosts]
        return self._issue(hosts[0], ExtendedKeyUsageOID.SERVER_AUTH, names)

    def issue_client(self, common_name, groups=()):
        """Issue a client certificate; Kubernetes reads the user from CN and groups from O."""
        return self._issue(common_name, ExtendedKeyUsageOID.CLIENT_AUTH, [], groups)

    def write_client_files(self, directory, common_name):
        """Write the CA and a new client certificate for C{common_name} into C{directory}."""
        ca_path = _write(os.path.join(directory, "ca.crt"), self.cert_pem)
        cert_path, key_path = self.issue_client(common_name).write(directory, common_name)
        return ClientFiles(ca=ca_path, cert=cert_path, key=key_path)

    def _issue(self, common_name, usage, alt_names, organizations=()):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _builder(_name(common_name, organizations), self._certificate.subject, key.public_key())
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        builder = builder.add_extension(_key_usage(digital_signature=True), critical=True)
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        return KeyPair(certificate.public_bytes(serialization.Encoding.PEM), key_pem)


def write_kubeconfig(path, context, server_url, ca_pem=None, client=None, token=None, inline=True):
    """Add (or replace) a context, with a cluster and a user of the same name, to the kubeconfig
    at C{path}; C{client} is a L{KeyPair}; with C{inline} False, PEMs go to files beside it."""
    cluster, user = {"server": server_url}, {}
    stem = os.path.join(os.path.dirname(os.path.abspath(path)), context)
    if ca_pem:
        cluster.update(_credential("certificate-authority", ca_pem, inline, stem + "-ca.crt"))
    if client:
        user.update(_credential("client-certificate", client.cert_pem, inline, stem + "-client.crt"))
        user.update(_credential("client-key", client.key_pem, inline, stem + "-client.key"))
    if token:
        user["token"] = token
    _merge_kubeconfig(path, context, cluster, user)


def _name(common_name, organizations=()):
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _builder(subject, issuer, public_key):
    """A certificate builder with the fields strict verifiers (Python 3.13+, urllib3) require."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(digital_signature=False, key_cert_sign=False, crl_sign=False):
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign, crl_sign=crl_sign,
        encipher_only=False, decipher_only=False,
    )


def _subject_alt_name(host):
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _credential(name, pem, inline, path):
    if inline:
        return {name + "-data": base64.b64encode(pem).decode()}
    return {name: _write(path, pem)}


def _merge_kubeconfig(path, context, cluster, user):
    config = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
    if os.path.exists(path):
        with open(path) as f:
            config = json.load(f)
    entries = {
        "clusters": {"name": context, "cluster": cluster},
        "users": {"name": context, "user": user},
        "contexts": {"name": context, "context": {"cluster": context, "user": context}},
    }
    for section, entry in entries.items():
        config[section] = [old for old in config[section] if old["name"] != context] + [entry]
    config["current-context"] = context
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
