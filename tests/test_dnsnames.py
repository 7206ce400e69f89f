"""The names of types and rcodes as miekg/dns (and so CoreDNS's logs, metrics and options) spells them."""

from twisted.trial import unittest

from kubernetai.dnsnames import RCODES, TYPES, rcode_name, type_name
from tests.support import one_test_per_row

TYPE_ROWS = [(1, "A"), (28, "AAAA"), (33, "SRV"), (255, "ANY"), (252, "AXFR"), (43, "DS"), (65, "HTTPS"),
             (257, "CAA"), (65280, "TYPE65280")]
RCODE_ROWS = [(0, "NOERROR"), (3, "NXDOMAIN"), (5, "REFUSED"), (16, "BADVERS"), (11, "DSOTYPENI"), (30, "RCODE30")]


@one_test_per_row("type", TYPE_ROWS, lambda row: row[1])
@one_test_per_row("rcode", RCODE_ROWS, lambda row: row[1])
class NameTests(unittest.SynchronousTestCase):
    def check_type(self, row):
        code, name = row
        known = {name: code} if not name.startswith("TYPE") else {}
        self.assertEqual((type_name(code), {n: c for n, c in TYPES.items() if n == name}), (name, known))

    def check_rcode(self, row):
        code, name = row
        known = {name: code} if not name.startswith("RCODE") else {}
        self.assertEqual((rcode_name(code), {n: c for n, c in RCODES.items() if n == name}), (name, known))
