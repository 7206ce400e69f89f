"""
What users install, run the way they run it: the wheel (built here, or the one C{.ci/run} built,
named by C{KUBERNETAI_WHEEL}) holds every module, and, installed into a fresh virtual environment
(not editable; its Python from C{KUBERNETAI_INSTALL_PYTHON}, else C{/usr/bin/python3}), reports its
version, validates C{Corefile.example} and a Corefile with every supported plugin, and runs that
Corefile: answers over UDP and TCP, health, ready and metrics, and a clean stop on SIGTERM.

Run as root, the daemon runs as C{nobody}, so its install directory is read-only to it, as under
systemd: Twisted's plugin cache, written once as root after the install (the README's step), must
spare it any warning.
"""

import atexit
import functools
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

import kubernetai
from kubernetai.apiserver.server import ApiServer
from tests.support import FakeUpstream, another_python_environment
from tests.test_daemon import REPO, free_port

EVERY_PLUGIN = """\
.:{dns} {{
    bind 127.0.0.1
    reload 2s
    nsid installed
    debug
    ready 127.0.0.1:{ready}
    explain 127.0.0.1:{explain}
    health 127.0.0.1:{health} {{
        lameduck 1s
    }}
    prometheus 127.0.0.1:{metrics}
    errors
    log
    local
    any
    chaos
    loadbalance
    rewrite name exact alias.example.org www.example.org
    rewrite continue rcode exact nothing.invalid SERVFAIL NXDOMAIN
    autopath @kubernetai
    acl {{
        block type MX
    }}
    cache 30
    header {{
        response set aa
    }}
    minimal
    template IN A example {{
        match "^ip-(?P<a>[0-9]+)-(?P<b>[0-9]+)[.]example[.]$"
        answer "{{{{ .Name }}}} 60 IN A 10.0.{{{{ .Group.a }}}}.{{{{ parseInt .Group.b 10 8 }}}}"
        fallthrough
    }}
    transfer cluster.local {{
        to 127.0.0.1
    }}
    hosts {hosts} {{
        fallthrough
    }}
    k8s_external example.net
    kubernetai cluster.local in-addr.arpa {{
        endpoint {api}
        pods verified
        fallthrough in-addr.arpa
        external_names loadbalancer externalips fallback clusterip
    }}
    file {zone} example.com
    loop
    forward . 127.0.0.1:{upstream}
}}
whoami.test:{dns} {{
    bind 127.0.0.1
    view loopback {{
        expr incidr(client_ip(), '127.0.0.0/8')
    }}
    whoami
}}
"""
PLUGINS = ("reload", "nsid", "bind", "debug", "ready", "explain", "health", "prometheus", "errors", "log", "local", "any", "chaos",
           "loadbalance", "rewrite", "autopath", "acl", "cache", "header", "minimal", "template", "transfer",
           "hosts", "k8s_external", "kubernetai", "file", "loop", "forward", "whoami", "view")


def run(*command, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=another_python_environment(),
                            **kwargs)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def build_wheel(directory: str) -> str:
    """The wheel of this checkout, built into C{directory}."""
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", directory, REPO)
    (wheel,) = glob.glob(os.path.join(directory, "kubernetai-*.whl"))
    return wheel


def install_python() -> str:
    """The Python to install with: a system one, as a daemon user may run none under a home directory."""
    chosen = os.environ.get("KUBERNETAI_INSTALL_PYTHON")
    if chosen:
        return chosen
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")


def source_files() -> set[str]:
    """Every file of the package and of its twistd plugin in this checkout, as wheel paths."""
    found = set()
    for top in ("kubernetai", os.path.join("twisted", "plugins")):
        for directory, subdirectories, files in os.walk(os.path.join(REPO, top)):
            subdirectories[:] = [name for name in subdirectories if name != "__pycache__"]
            found |= {os.path.relpath(os.path.join(directory, name), REPO).replace(os.sep, "/")
                      for name in files if name.endswith((".py", ".yaml"))}
    return found


@dataclass(frozen=True)
class Installed:
    """The wheel, and the fresh virtual environment it was installed into."""

    directory: str
    wheel: str
    twistd: str
    version: str


@functools.cache
def installed() -> Installed:
    """Build (unless given) and install the wheel, once for all the tests of this module."""
    directory = tempfile.mkdtemp(prefix="kubernetai-installed-")
    atexit.register(shutil.rmtree, directory, True)
    os.chmod(directory, 0o755)
    wheel = os.environ.get("KUBERNETAI_WHEEL") or build_wheel(directory)
    venv = os.path.join(directory, "venv")
    run(install_python(), "-m", "venv", venv)
    run(os.path.join(venv, "bin", "pip"), "install", "--quiet", wheel)
    twistd = os.path.join(venv, "bin", "twistd")
    # The README's step after every install or upgrade: as root, it also writes Twisted's plugin cache.
    version = run(twistd, "kubernetai", "--version", cwd=directory).stdout
    return Installed(directory, wheel, twistd, version)


class InstalledWheelTests(unittest.TestCase):
    timeout = 900  # the first test builds and installs the wheel

    @defer.inlineCallbacks
    def setUp(self):
        found = yield deferToThread(installed)
        self.directory, self.wheel, self.twistd, self.version = (
            found.directory, found.wheel, found.twistd, found.version)
        self.as_daemon_user = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self.as_daemon_user = dict(user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])

    def test_the_wheel_holds_every_module_and_no_test(self):
        with zipfile.ZipFile(self.wheel) as wheel:
            names = set(wheel.namelist())
        self.assertEqual(source_files() - names, set(), "left out of the wheel")
        self.assertIn("kubernetai/cache/rules.py", names)
        self.assertIn("kubernetai/demo/east.yaml", names)
        self.assertFalse([name for name in names if name.startswith("tests/")])

    def test_version_is_the_package_s(self):
        self.assertTrue(self.version.startswith(f"kubernetai {kubernetai.__version__} (Twisted "), self.version)

    def test_corefile_example_validates(self):
        result = run(self.twistd, "-n", "kubernetai", "-c", os.path.join(REPO, "Corefile.example"), "--validate",
                     cwd=self.directory)
        self.assertTrue(result.stdout.endswith("Corefile OK\n"), result.stdout)

    def test_every_plugin_validates(self):
        path = self.write_corefile(dict(dns=free_port(), ready=free_port(), health=free_port(),
                                        metrics=free_port(), explain=free_port(), api="http://127.0.0.1:1",
                                        upstream=53))
        result = run(self.twistd, "-n", "kubernetai", "-c", path, "--validate", cwd=self.directory)
        steps = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ")]
        self.assertEqual(sorted(set(steps)), sorted(PLUGINS))
        self.assertTrue(result.stdout.endswith("Corefile OK\n"), result.stdout)

    @defer.inlineCallbacks
    def test_every_plugin_runs_answers_and_stops_cleanly(self):
        api = ApiServer()
        api.start()
        self.addCleanup(api.stop)
        api.namespace("default")
        api.service("default", "web", cluster_ips=["10.0.0.10"], ports=[{"name": "http", "port": 80}])
        api.service("default", "edge", cluster_ips=["10.0.0.11"], ports=[{"name": "http", "port": 80}],
                    type="LoadBalancer", ingress=["192.0.2.20"])
        upstream = FakeUpstream({("www.example.org.", "A"): ["192.0.2.1"]})
        ports = dict(dns=free_port(), ready=free_port(), health=free_port(), metrics=free_port(),
                     explain=free_port(), api=api.url, upstream=upstream.start(self))
        path = self.write_corefile(ports)
        daemon = subprocess.Popen([self.twistd, "-n", "--pidfile=", "kubernetai", "-c", path], cwd=self.directory,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=another_python_environment(), **self.as_daemon_user)
        self.addCleanup(daemon.wait)
        self.addCleanup(daemon.kill)
        questions = [
            ("web.default.svc.cluster.local", "A", "10.0.0.10"),
            ("10.0.0.10.in-addr.arpa", "PTR", "web.default.svc.cluster.local."),
            ("printer.lan", "A", "192.0.2.80"),
            ("edge.default.svc.cluster.local", "A", "192.0.2.20"),
            ("edge.default.example.net", "A", "192.0.2.20"),
            ("www.example.org", "A", "192.0.2.1"),
            ("alias.example.org", "A", "192.0.2.1"),
            ("ip-1-2.example", "A", "10.0.1.2"),
            ("www.example.com", "A", "192.0.2.90"),
        ]
        answered = yield deferToThread(ask_until_answered, ports["dns"], "web.default.svc.cluster.local")
        if not answered:
            daemon.kill()
            self.fail(f"the installed daemon never answered:\n{daemon.communicate()[0]}")
        for name, rdtype, expected in questions:
            for ask in (dns.query.udp, dns.query.tcp):
                reply = yield deferToThread(ask, dns.message.make_query(name, rdtype), "127.0.0.1",
                                            port=ports["dns"], timeout=5)
                self.assertEqual([rdata.to_text() for rrset in reply.answer for rdata in rrset], [expected],
                                 (name, ask.__name__))
        asked = [
            (dns.message.make_query("localhost", "A"), "127.0.0.1"),
            (dns.message.make_query("example.org", "ANY"), '"ANY obsoleted" "See RFC 8482"'),
            (dns.message.make_query("version.bind", "TXT", "CH"), f'"kubernetai-{kubernetai.__version__}"'),
            (dns.message.make_query("www.example.org", "MX"), None),
        ]
        for message, expected in asked:
            reply = yield deferToThread(dns.query.udp, message, "127.0.0.1", port=ports["dns"], timeout=5)
            answers = [rdata.to_text() for rrset in reply.answer for rdata in rrset]
            self.assertEqual(answers, [expected] if expected else [], message.question)
            self.assertEqual(reply.rcode(), dns.rcode.REFUSED if expected is None else dns.rcode.NOERROR)
        nsid = yield deferToThread(dns.query.udp, dns.message.make_query(
            "www.example.org", "A", use_edns=0, options=[dns.edns.NSIDOption(b"")]), "127.0.0.1", port=ports["dns"],
            timeout=5)
        self.assertEqual([option.nsid for option in nsid.options], [b"installed"])
        self.assertTrue(nsid.flags & dns.flags.AA)
        whoami = yield deferToThread(dns.query.tcp, dns.message.make_query("whoami.test", "A"), "127.0.0.1",
                                     port=ports["dns"], timeout=5)
        self.assertEqual(whoami.additional[0].name.to_text(), "whoami.test.")
        for name, path_ in (("health", "/health"), ("ready", "/ready"), ("metrics", "/metrics"),
                            ("explain", "/explain?name=web.default.svc.cluster.local")):
            body = yield deferToThread(http_get, f"http://127.0.0.1:{ports[name]}{path_}")
            self.assertTrue(body, name)
        daemon.send_signal(signal.SIGTERM)
        status = yield deferToThread(daemon.wait, 30)
        output = daemon.stdout.read()
        # twistd ends by the signal that stopped it, once shut down: systemd counts SIGTERM a clean exit.
        self.assertEqual(status, -signal.SIGTERM, output)
        self.assertIn("Server Shut Down.", output)
        for unwanted in ("Traceback", "Unable to write to plugin cache", "#error", "#warn", "#critical"):
            self.assertNotIn(unwanted, output)

    def write_corefile(self, ports: dict) -> str:
        hosts = os.path.join(self.directory, f"hosts-{ports['dns']}")
        with open(hosts, "w") as hosts_file:
            hosts_file.write("192.0.2.80 printer.lan\n")
        zone = os.path.join(self.directory, f"example.com-{ports['dns']}")
        with open(zone, "w") as zone_file:
            zone_file.write("$ORIGIN example.com.\n@ 3600 SOA ns hostmaster 1 7200 3600 1209600 3600\n"
                            "@ 3600 NS ns\nns 3600 A 192.0.2.53\nwww 3600 A 192.0.2.90\n")
        path = os.path.join(self.directory, f"Corefile-{ports['dns']}")
        with open(path, "w") as corefile:
            corefile.write(EVERY_PLUGIN.format(hosts=hosts, zone=zone, **ports))
        for written in (hosts, zone, path):
            os.chmod(written, 0o644)
        return path


def ask_until_answered(port: int, name: str) -> bool:
    for _ in range(300):
        try:
            dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=0.2)
            return True
        except (OSError, dns.exception.Timeout):
            continue
    return False


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()
