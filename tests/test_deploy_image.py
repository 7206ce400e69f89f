"""
deploy/Containerfile and the Deployment of deploy/kubernetes/base, checked without building
the image (no container engine runs here): the image's user is the pod's, its command is a
twistd command line that validates the base Corefile where the pod mounts it, and the ports
and probes the Deployment names are those the Corefile serves.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

import yaml
from twisted.trial.unittest import SynchronousTestCase

from kubernetai.corefile import load_corefile
from tests.test_daemon import TWISTD

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTAINERFILE = os.path.join(REPO, "deploy", "Containerfile")
BASE = os.path.join(REPO, "deploy", "kubernetes", "base")
VENV = "/opt/kubernetai"


def instructions(path: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) of each instruction of a Containerfile, continuation lines joined."""
    with open(path) as text:
        joined = re.sub(r"\\\n", " ", text.read())
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def final_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The instructions after the last FROM: what the image that runs is made of."""
    last = max(index for index, (name, _) in enumerate(steps) if name == "FROM")
    return steps[last:]


def one(steps: list[tuple[str, str]], name: str) -> str:
    (value,) = [rest for instruction, rest in steps if instruction == name]
    return value


def deployment() -> dict:
    with open(os.path.join(BASE, "deployment.yaml")) as text:
        return yaml.safe_load(text)


def directive_args(path: str, name: str) -> tuple[str, ...]:
    """The arguments of directive C{name} in the only server block of the Corefile at C{path}."""
    (block,) = load_corefile(path)
    (directive,) = [directive for directive in block.directives if directive.name == name]
    return directive.args


class ContainerfileTests(SynchronousTestCase):
    def setUp(self):
        self.image = final_stage(instructions(CONTAINERFILE))
        self.pod = deployment()["spec"]["template"]["spec"]
        (self.container,) = self.pod["containers"]

    def test_runs_as_the_pods_fixed_non_root_user(self):
        user, group = one(self.image, "USER").split(":")
        security = self.pod["securityContext"]
        self.assertEqual((int(user), int(group)), (security["runAsUser"], security["runAsGroup"]))
        (secret,) = [volume["secret"] for volume in self.pod["volumes"] if "secret" in volume]
        self.assertEqual((secret["defaultMode"] & 0o040, security["fsGroup"]), (0o040, int(group)),
                         "the kubeconfigs readable by the image's group")
        self.assertNotEqual(int(user), 0)
        self.assertTrue(security["runAsNonRoot"])

    def test_no_shell_at_run_time(self):
        self.assertEqual([name for name, _ in self.image if name in ("RUN", "CMD", "SHELL")], [])
        self.assertIsInstance(json.loads(one(self.image, "ENTRYPOINT")), list)

    def test_installs_the_wheel_it_builds(self):
        build = " ".join(rest for name, rest in instructions(CONTAINERFILE) if name == "RUN")
        self.assertIn("python -m build --wheel --outdir /dist /src", build)
        self.assertIn(f"{VENV}/bin/pip install --no-cache-dir /dist/kubernetai-*.whl", build)
        self.assertEqual(one(self.image, "COPY"), f"--from=build {VENV} {VENV}")

    def test_command_validates_the_corefile_where_the_pod_mounts_it(self):
        command = json.loads(one(self.image, "ENTRYPOINT"))
        self.assertEqual(command[0], f"{VENV}/bin/twistd")
        corefile = command[command.index("-c") + 1]
        (mount,) = [mount for mount in self.container["volumeMounts"] if mount["name"] == "corefile"]
        self.assertEqual(os.path.dirname(corefile), mount["mountPath"])
        local = self.mktemp()
        with open(os.path.join(BASE, "Corefile")) as shipped, open(local, "w") as out:
            # Outside a pod there is no service account: the stanza gets an endpoint.
            out.write(shipped.read().replace("ip6.arpa {", "ip6.arpa {\n        endpoint https://127.0.0.1:6443"))
        argv = [TWISTD, *command[1:command.index("-c") + 1], local, "--validate"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, f"{shlex.join(argv)}: {done.stdout}{done.stderr}")

    def test_probes_and_ports_are_the_corefiles(self):
        corefile = os.path.join(BASE, "Corefile")
        self.assertEqual(self.container["livenessProbe"]["httpGet"], {"path": "/health", "port": 8080})
        self.assertEqual(directive_args(corefile, "health"), (":8080",))
        self.assertEqual(self.container["readinessProbe"]["httpGet"], {"path": "/ready", "port": 8181})
        self.assertEqual(directive_args(corefile, "ready"), (":8181",))
        self.assertEqual(directive_args(corefile, "prometheus"), (":9153",))
        ports = {(port["containerPort"], port["protocol"]) for port in self.container["ports"]}
        self.assertEqual(ports, {(53, "UDP"), (53, "TCP"), (9153, "TCP")})
        exposed = set(one(self.image, "EXPOSE").split())
        self.assertEqual(exposed, {f"{port}/{protocol.lower()}" for port, protocol in ports})

    def test_hardened_pod(self):
        security = self.container["securityContext"]
        self.assertEqual(security["capabilities"], {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]})
        self.assertTrue(security["readOnlyRootFilesystem"])
        self.assertFalse(security["allowPrivilegeEscalation"])
        self.assertEqual(self.pod["securityContext"]["seccompProfile"], {"type": "RuntimeDefault"})
        writable = [mount["mountPath"] for mount in self.container["volumeMounts"] if not mount.get("readOnly")]
        self.assertEqual(writable, ["/tmp"])
        (tmp,) = [volume for volume in self.pod["volumes"] if volume["name"] == "tmp"]
        self.assertEqual(tmp["emptyDir"]["medium"], "Memory")
