"""
file's answers' parts as functions, on CoreDNS's tables: DNAME substitution
(C{dname_test.go}), the wildcard label (C{wildcard_test.go}) and the closest
encloser (C{closest_test.go}).
"""

from __future__ import annotations

import io

from twisted.names import dns as tdns
from twisted.trial import unittest

from kubernetai.plugins.file.lookup import DNAME, asterisk_of, closest_encloser, synthesize_cname
from kubernetai.plugins.file.zone import name_key, read_zone
from tests.support import one_test_per_row
from tests.test_file import MIEK


def dname(owner: str, target: str) -> tdns.RRHeader:
    """A DNAME record as the zone table holds it (its target as raw data)."""
    data = io.BytesIO()
    tdns.Name(target.rstrip(".").encode()).encode(data)
    return tdns.RRHeader(owner.rstrip(".").encode(), DNAME, tdns.IN, 300, tdns.UnknownRecord(data.getvalue(), 300))


# dname_test.go dnameSubstitutionTestCases: (qname, owner, target, the CNAME's target or "" for none)
DNAME_SUBSTITUTION_ROWS = (
    ("com.", "example.com.", "example.net.", ""),
    ("example.com.", "example.com.", "example.net.", ""),
    ("a.example.com.", "example.com.", "example.net.", "a.example.net."),
    ("a.b.example.com.", "example.com.", "example.net.", "a.b.example.net."),
    ("ab.example.com.", "b.example.com.", "example.net.", ""),
    ("foo.example.com.", "example.com.", "example.net.", "foo.example.net."),
    ("a.x.example.com.", "x.example.com.", "example.net.", "a.example.net."),
    ("a.example.com.", "example.com.", "y.example.net.", "a.y.example.net."),
    ("cyc.example.com.", "example.com.", "example.com.", "cyc.example.com."),
    ("cyc.example.com.", "example.com.", "c.example.com.", "cyc.c.example.com."),
    ("shortloop.x.x.", "x.", ".", "shortloop.x."),
    ("shortloop.x.", "x.", ".", "shortloop."),
)


@one_test_per_row("row", DNAME_SUBSTITUTION_ROWS, lambda row: f"{row[0]} {row[1]} {row[2]}")
class DnameSubstitutionTests(unittest.SynchronousTestCase):
    def check_row(self, row):
        qname, owner, target, expected = row
        cname = synthesize_cname(qname, dname(owner, target))
        self.assertEqual(name_key(cname.payload.name) if cname is not None else "", expected)


# wildcard_test.go TestReplaceWithAsteriskLabel
ASTERISK_ROWS = ((".", ""), ("miek.nl.", "*.nl."), ("www.miek.nl.", "*.miek.nl."))


@one_test_per_row("row", ASTERISK_ROWS, lambda row: row[0])
class AsteriskTests(unittest.SynchronousTestCase):
    def check_row(self, row):
        self.assertEqual(asterisk_of(row[0]), row[1])


# closest_test.go TestClosestEncloser
CLOSEST_ENCLOSER_ROWS = (
    ("miek.nl.", "miek.nl."),
    ("www.miek.nl.", "www.miek.nl."),
    ("blaat.miek.nl.", "miek.nl."),
    ("blaat.www.miek.nl.", "www.miek.nl."),
    ("www.blaat.miek.nl.", "miek.nl."),
    ("blaat.a.miek.nl.", "a.miek.nl."),
    ("blaat.z.a.miek.nl.", "a.miek.nl."),
)


@one_test_per_row("row", CLOSEST_ENCLOSER_ROWS, lambda row: row[0])
class ClosestEncloserTests(unittest.SynchronousTestCase):
    def check_row(self, row):
        self.assertEqual(closest_encloser(read_zone(MIEK, "miek.nl."), row[0]), row[1])
