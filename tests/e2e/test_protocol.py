"""
The wire answers of L{tests.protocol} from a real kube-apiserver: the same checks that
L{tests.test_apiserver} makes of the project's own API server.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from kubernetai.apiserver.resources import make_service
from tests import protocol
from tests.e2e.support import E2ETestCase

HTTP = {"name": "http", "port": 80, "protocol": "TCP"}


class ProtocolTests(E2ETestCase):
    def make_objects(self) -> None:
        self.admin.namespace(protocol.NAMESPACE)
        for number, name in enumerate(("a", "b"), 1):
            self.admin.service(make_service(protocol.NAMESPACE, name, [f"10.0.6.{number}"], [HTTP]))

    def get(self, path: str):
        """GET as the admin: status, headers with lower-case names, body."""
        request = urllib.request.Request(self.plane.url + path)
        try:
            with urllib.request.urlopen(request, context=self.plane.admin_context(), timeout=30) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
        except urllib.error.HTTPError as err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()

    def test_answers_as_the_checks_say(self):
        self.assertEqual(protocol.failed_checks(self.get), [])
