"""
Credentials rotated under a running daemon, against a real kube-apiserver with RBAC: a
stanza's kubeconfig, replaced whole as a kubelet replaces a mounted Secret's files, is read
again (kubernetai.kubernetes.connection.RereadingApiClient); a stanza refused with the old
token syncs with the new one, without a restart.
"""

from __future__ import annotations

import os

from tests.e2e.support import Daemon, E2ETestCase, eventually, stanza

# The daemon's retries back off up to 10 s, and it reads credentials again at most every 10 s.
SYNCED_AFTER_ROTATION_WITHIN = 40.0


def replace(path: str, text: str) -> None:
    """Replace the file at C{path} in one rename, as a kubelet updates a Secret's files."""
    with open(path + ".new", "w") as out:
        out.write(text)
    os.replace(path + ".new", path)


class RotationTests(E2ETestCase):
    def test_kubeconfig_replaced_under_a_running_daemon(self):
        with open(self.identities.no_rights) as refused, open(self.identities.token) as allowed:
            refused_text, allowed_text = refused.read(), allowed.read()
        path = os.path.abspath(self.mktemp())
        replace(path, refused_text)
        daemon = Daemon(self, stanza("cluster.local", path))
        eventually(lambda: "forbidden" in daemon.log().lower(), 20.0, "the old token refused")
        self.assertEqual(daemon.ready()[0], 503)
        replace(path, allowed_text)
        eventually(lambda: daemon.ready()[0] == 200 or daemon.exited(), SYNCED_AFTER_ROTATION_WITHIN,
                   "synced with the new token")
        self.assertFalse(daemon.exited())
