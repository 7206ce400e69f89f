"""
Credentials stay out of what operators read: the plan --validate prints,
/ready?verbose, and the logs of a stanza whose API server refuses it.
"""

import json
import os

from twisted.internet import defer
from twisted.trial import unittest

from kubernetai.daemon import build_daemon
from kubernetai.apiserver.server import ApiServer
from tests.support import capture_logs, wait_until, write_corefile
from tests.test_health_ready import Running, get

TOKEN = "s3cr3t-t0ken-never-shown"


class SecretTests(unittest.TestCase):
    def setUp(self):
        self.api = ApiServer(token="another-token")
        self.api.start()
        self.addCleanup(self.api.stop)
        self.kubeconfig = os.path.join(os.path.abspath(self.mktemp()), "kubeconfig")
        os.makedirs(os.path.dirname(self.kubeconfig))
        self.api.write_kubeconfig(self.kubeconfig, context="east", token=TOKEN)
        self.corefile = f""".:0 {{
    bind 127.0.0.1
    ready 127.0.0.1:0
    kubernetai cluster.local {{
        kubeconfig {self.kubeconfig} east
        startup_timeout 100ms
    }}
    kubernetai other.local {{
        endpoint http://admin:{TOKEN}@127.0.0.1:1
        startup_timeout 100ms
    }}
}}
"""

    def test_plan(self):
        plan = build_daemon(write_corefile(self, self.corefile)).plan()
        self.assertIn("kubernetai #2 other.local. (http://127.0.0.1:1)", plan)
        self.assertNotIn(TOKEN, plan)
        self.assertNotIn("admin", plan)

    @defer.inlineCallbacks
    def test_ready_view_and_logs(self):
        logs = capture_logs(self)
        running = Running(self, self.corefile)
        yield running.dns_port()
        yield wait_until(lambda: any("401" in line for line in logs), "the refusal to be logged")
        status, _, body = yield get(running.http_port(), "/ready?verbose")
        self.assertEqual(status, 503)
        view = json.loads(body)
        self.assertEqual(sorted(stanza["api_server"] for stanza in view["stanzas"]),
                         sorted(["http://127.0.0.1:1", self.api.url]))
        self.assertNotIn(TOKEN, body.decode())
        self.assertFalse([line for line in logs if TOKEN in line], "no log line carries the token")
