"""
file through a running daemon: the rows of CoreDNS's C{plugin/file} handler
tests, one test per row, each asking a daemon serving that test's zone file
(C{tests/file_zones/}) over UDP and comparing rcode and sections as CoreDNS's
C{test.SortAndCheck} does (L{record_key}).  Its setup, reload, chain and kept
replies: L{tests.test_file_setup}; its functions' tables: L{tests.test_file_lookup}.

The rows' next plugin (CoreDNS's C{test.ErrorHandler}, SERVFAIL) is the end
of the chain, which answers SERVFAIL too.  The upstream of a CNAME leaving
the zone is the daemon itself: a block for C{example.com} whose C{hosts}
answers SERVFAIL stands for the unit tests' missing server.

Not ported: escape_test.go (a dot inside a label,
C{has\\.dot}, which Twisted's names cannot tell from two labels);
zone_test.go and delete_test.go, which call the Go zone's methods;
secondary_test.go, nsec3_test.go and the benchmarks (no secondary zones;
NSEC3 is refused at start-up, as there).
"""

from __future__ import annotations

import os
import shutil
from typing import NamedTuple

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdatatype
from twisted.internet import defer
from twisted.trial import unittest

from tests.support import one_test_per_row, query, start_daemon

ZONES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "file_zones")
MIEK = os.path.join(ZONES, "miek.nl")


class Row(NamedTuple):
    qname: str
    qtype: str
    answer: tuple[str, ...] = ()
    ns: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    rcode: str = "NOERROR"
    do: bool = False
    # The AA flag, where the CoreDNS test checks it.
    aa: bool | None = None


def record_key(name: str, ttl: int, rdtype: str, data: str) -> str:
    """A record as CoreDNS's test.Section compares it: an SOA by its server, an NSEC by its next name, an
    RRSIG by the type it covers, its labels and signer (the rows shorten signatures); others whole."""
    fields = data.split()
    if rdtype == "RRSIG":
        data = f"{fields[0]} {fields[2]} {fields[7]}"
    elif rdtype in ("SOA", "NSEC"):
        data = fields[0]
    return f"{name} {ttl} {rdtype} {data}"


def expected_record(text: str) -> str:
    """A row's record (TTL 3600 and class IN when left out, as CoreDNS's test helpers read it)."""
    name, *rest = text.split()
    ttl = int(rest.pop(0)) if rest[0].isdigit() else 3600
    if rest[0] == "IN":
        rest.pop(0)
    rdtype, data = rest[0], " ".join(rest[1:])
    if rdtype != "RRSIG":
        data = dns.rdata.from_text("IN", rdtype, data, origin=dns.name.root, relativize=False).to_text()
    return record_key(name, ttl, rdtype, data)


def section(rrsets) -> list[str]:
    return sorted(record_key(rrset.name.to_text(), rrset.ttl, dns.rdatatype.to_text(rrset.rdtype), rdata.to_text())
                  for rrset in rrsets for rdata in rrset)


def outcome(reply: dns.message.Message, row: Row):
    """What a row checks of a reply."""
    seen = (dns.rcode.to_text(reply.rcode()), section(reply.answer), section(reply.authority),
            section(reply.additional))
    return seen + (bool(reply.flags & dns.flags.AA),) if row.aa is not None else seen


def expected(row: Row):
    wanted = (row.rcode,) + tuple(sorted(expected_record(text) for text in records)
                                  for records in (row.answer, row.ns, row.extra))
    return wanted + (row.aa,) if row.aa is not None else wanted


def label(row: Row) -> str:
    return f"{row.qtype} {row.qname}" + (" do" if row.do else "")


def corefile(keys: str, lines: str) -> str:
    """A server block of C{keys} (each on port 0) on 127.0.0.1 with C{lines}."""
    return f"{keys} {{\n    bind 127.0.0.1\n    {lines}\n}}\n"


class ZoneTable(unittest.TestCase):
    """Asks each row's question of a daemon serving C{zone} (a file of tests/file_zones/) for C{origin}."""

    zone: str
    origin: str
    keys = ""
    lines = ""

    def corefile(self) -> str:
        keys = self.keys or f"{self.origin}:0"
        return corefile(keys, f"file {os.path.join(ZONES, self.zone)} {self.origin}\n    {self.lines}")

    @defer.inlineCallbacks
    def check_row(self, row: Row):
        port = start_daemon(self, self.corefile())
        reply = yield query(port, row.qname, row.qtype, want_dnssec=row.do)
        self.assertEqual(outcome(reply, row), expected(row))


MIEK_SOA = "miek.nl. 1800 IN SOA linode.atoom.net. miek.miek.nl. 1282630057 14400 3600 604800 14400"

# delegation_test.go
MIEK_AUTH = (
    "miek.nl. 1800 IN NS ext.ns.whyscream.net.",
    "miek.nl. 1800 IN NS linode.atoom.net.",
    "miek.nl. 1800 IN NS ns-ext.nlnetlabs.nl.",
    "miek.nl. 1800 IN NS omval.tednet.nl.",
)

# lookup_test.go dnsTestCases
LOOKUP_ROWS = (
    Row("www.miek.nl.", "A", answer=(
        "a.miek.nl. 1800 IN A 139.162.196.78",
        "www.miek.nl. 1800 IN CNAME a.miek.nl.",
    ), ns=MIEK_AUTH),
    Row("www.miek.nl.", "AAAA", answer=(
        "a.miek.nl. 1800 IN AAAA 2a01:7e00::f03c:91ff:fef1:6735",
        "www.miek.nl. 1800 IN CNAME a.miek.nl.",
    ), ns=MIEK_AUTH),
    Row("miek.nl.", "SOA", answer=(MIEK_SOA,), ns=MIEK_AUTH),
    Row("miek.nl.", "AAAA", answer=("miek.nl. 1800 IN AAAA 2a01:7e00::f03c:91ff:fef1:6735",), ns=MIEK_AUTH),
    Row("mIeK.NL.", "AAAA", answer=("miek.nl. 1800 IN AAAA 2a01:7e00::f03c:91ff:fef1:6735",), ns=MIEK_AUTH),
    Row("miek.nl.", "MX", answer=(
        "miek.nl. 1800 IN MX 1 aspmx.l.google.com.",
        "miek.nl. 1800 IN MX 10 aspmx2.googlemail.com.",
        "miek.nl. 1800 IN MX 10 aspmx3.googlemail.com.",
        "miek.nl. 1800 IN MX 5 alt1.aspmx.l.google.com.",
        "miek.nl. 1800 IN MX 5 alt2.aspmx.l.google.com.",
    ), ns=MIEK_AUTH),
    Row("a.miek.nl.", "SRV", ns=(MIEK_SOA,)),
    Row("b.miek.nl.", "A", rcode="NXDOMAIN", ns=(MIEK_SOA,)),
    Row("srv.miek.nl.", "SRV", answer=("srv.miek.nl. 1800 IN SRV 10 10 8080 a.miek.nl.",), extra=(
        "a.miek.nl. 1800 IN A 139.162.196.78",
        "a.miek.nl. 1800 IN AAAA 2a01:7e00::f03c:91ff:fef1:6735",
    ), ns=MIEK_AUTH),
    Row("mx.miek.nl.", "MX", answer=("mx.miek.nl. 1800 IN MX 10 a.miek.nl.",), extra=(
        "a.miek.nl. 1800 IN A 139.162.196.78",
        "a.miek.nl. 1800 IN AAAA 2a01:7e00::f03c:91ff:fef1:6735",
    ), ns=MIEK_AUTH),
    Row("asterisk.x.miek.nl.", "CNAME", answer=("asterisk.x.miek.nl. 1800 IN CNAME www.miek.nl.",), ns=MIEK_AUTH),
    Row("a.b.x.miek.nl.", "CNAME", rcode="NXDOMAIN", ns=(MIEK_SOA,)),
    Row("asterisk.y.miek.nl.", "A", answer=("asterisk.y.miek.nl. 1800 IN A 139.162.196.78",), ns=MIEK_AUTH),
    Row("foo.dname.miek.nl.", "CNAME", answer=(
        "dname.miek.nl. 1800 IN DNAME x.miek.nl.",
        "foo.dname.miek.nl. 1800 IN CNAME foo.x.miek.nl.",
    ), ns=MIEK_AUTH),
    Row("ext-cname.miek.nl.", "A", answer=(
        "ext-cname.miek.nl. 1800 IN CNAME example.com.",
    ), rcode="SERVFAIL", ns=MIEK_AUTH),
    Row("txt.miek.nl.", "TXT", answer=('txt.miek.nl. 1800 IN TXT "v=spf1 a mx ~all"',), ns=MIEK_AUTH),
    Row("caa.miek.nl.", "CAA", answer=("caa.miek.nl. 1800 IN CAA 0 issue letsencrypt.org",), ns=MIEK_AUTH),
)


@one_test_per_row("row", LOOKUP_ROWS, label)
class LookupTests(ZoneTable):
    zone, origin = "miek.nl", "miek.nl."
    # ext-cname's target, example.com, fails as the unit test's missing upstream does.
    keys, lines = "miek.nl:0 example.com:0", "hosts /dev/null example.com"

    @defer.inlineCallbacks
    def test_upstream_refusing(self):
        """Where no plugin serves the CNAME's target (REFUSED), the answer is the CNAME, as CoreDNS's upstream."""
        port = start_daemon(self, corefile("miek.nl:0", f"file {os.path.join(ZONES, 'miek.nl')}"))
        reply = yield query(port, "ext-cname.miek.nl.", "A")
        self.assertEqual(outcome(reply, Row("", "")), expected(Row(
            "", "", answer=("ext-cname.miek.nl. 1800 IN CNAME example.com.",), ns=MIEK_AUTH)))


# lookup_test.go TestLookUpNoDataResult
NODATA_ROWS = (
    Row("a.miek.nl.", "MX", ns=(MIEK_SOA,)),
    Row("wildcard.nodata.miek.nl.", "MX", ns=(MIEK_SOA,)),
)


@one_test_per_row("row", NODATA_ROWS, label)
class NoDataTests(ZoneTable):
    zone, origin = "miek.nl", "miek.nl."


# lookup_test.go TestLookupFallthrough: (fallthrough zones, row); SERVFAIL is the end of the chain's.
FALLTHROUGH_ROWS = (
    ("", Row("doesnotexist.miek.nl.", "A", rcode="SERVFAIL")),
    ("", Row("x.miek.nl.", "A", rcode="SERVFAIL")),
    ("a.miek.nl.", Row("a.miek.nl.", "A", answer=("a.miek.nl. 1800 IN A 139.162.196.78",), ns=MIEK_AUTH)),
    ("a.miek.nl.", Row("doesnotexist.miek.nl.", "A", rcode="NXDOMAIN", ns=(MIEK_SOA,))),
    ("a.miek.nl.", Row("passthrough.a.miek.nl.", "A", rcode="SERVFAIL")),
    ("x.miek.nl.", Row("x.miek.nl.", "A", rcode="SERVFAIL")),
    ("x.miek.nl.", Row("wildcard.x.miek.nl.", "A", answer=(
        "a.miek.nl. 1800 IN A 139.162.196.78",
        "wildcard.x.miek.nl. 1800 IN CNAME www.miek.nl.",
        "www.miek.nl. 1800 IN CNAME a.miek.nl.",
    ), ns=MIEK_AUTH)),
)


@one_test_per_row("row", FALLTHROUGH_ROWS, lambda case: f"fallthrough {case[0] or 'all'} {label(case[1])}")
class FallthroughTests(unittest.TestCase):
    @defer.inlineCallbacks
    def check_row(self, case):
        zones, row = case
        lines = f"file {os.path.join(ZONES, 'miek.nl')} {{\n        fallthrough {zones}\n    }}"
        port = start_daemon(self, corefile("miek.nl:0", lines))
        reply = yield query(port, row.qname, row.qtype)
        self.assertEqual(outcome(reply, row), expected(row))


# lookup_test.go additionalTestCases and TestAdditionalSectionDeduplicationMixedCase
ADDITIONAL_AUTH = (
    "example.org. 1800 IN NS ns.example.org.",
)

HOST_GLUE = ("host.example.org. 1800 IN A 192.0.2.10", "host.example.org. 1800 IN AAAA 2001:db8::10")
SRV_RECORDS = (
    "srv.example.org. 1800 IN SRV 10 50 8080 host.example.org.",
    "srv.example.org. 1800 IN SRV 20 50 8080 host.example.org.",
)

ADDITIONAL_ROWS = (
    Row("mx.example.org.", "MX", answer=(
        "mx.example.org. 1800 IN MX 10 host.example.org.",
        "mx.example.org. 1800 IN MX 20 host.example.org.",
    ), ns=ADDITIONAL_AUTH, extra=HOST_GLUE),
    Row("srv.example.org.", "SRV", answer=SRV_RECORDS, ns=ADDITIONAL_AUTH, extra=HOST_GLUE),
    Row("two.example.org.", "MX", answer=(
        "two.example.org. 1800 IN MX 10 host.example.org.",
        "two.example.org. 1800 IN MX 20 other.example.org.",
    ), ns=ADDITIONAL_AUTH, extra=HOST_GLUE + (
        "other.example.org. 1800 IN A 192.0.2.20",
        "other.example.org. 1800 IN AAAA 2001:db8::20",
    )),
    Row("cname-srv.example.org.", "SRV", answer=(
        "cname-srv.example.org. 1800 IN CNAME srv.example.org.",
    ) + SRV_RECORDS, ns=ADDITIONAL_AUTH, extra=HOST_GLUE),
    Row("foo.wild.example.org.", "SRV", answer=(
        "foo.wild.example.org. 1800 IN CNAME srv.example.org.",
    ) + SRV_RECORDS, ns=ADDITIONAL_AUTH, extra=HOST_GLUE),
    Row("srv.dname.example.org.", "SRV", answer=(
        "dname.example.org. 1800 IN DNAME dsub.example.org.",
        "srv.dname.example.org. 1800 IN CNAME srv.dsub.example.org.",
        "srv.dsub.example.org. 1800 IN SRV 10 50 8080 host.example.org.",
    ), ns=ADDITIONAL_AUTH, extra=HOST_GLUE),
    Row("mixed.example.org.", "SRV", answer=(
        "mixed.example.org. 1800 IN SRV 10 50 8080 host.example.org.",
        "mixed.example.org. 1800 IN SRV 20 50 8080 HOST.EXAMPLE.ORG.",
    ), ns=ADDITIONAL_AUTH, extra=HOST_GLUE),
)


@one_test_per_row("row", ADDITIONAL_ROWS, label)
class AdditionalTests(ZoneTable):
    zone, origin = "example.org.additional", "example.org."


# The referral to delegated.miek.nl. of delegation_test.go and ds_test.go
MIEK_REFERRAL = dict(ns=(
    "delegated.miek.nl. 1800 IN NS a.delegated.miek.nl.",
    "delegated.miek.nl. 1800 IN NS ns-ext.nlnetlabs.nl.",
), extra=(
    "a.delegated.miek.nl. 1800 IN A 139.162.196.78",
    "a.delegated.miek.nl. 1800 IN AAAA 2a01:7e00::f03c:91ff:fef1:6735",
))

# delegation_test.go delegationTestCases
DELEGATION_ROWS = (
    Row("a.delegated.miek.nl.", "TXT", **MIEK_REFERRAL),
    Row("delegated.miek.nl.", "NS", **MIEK_REFERRAL),
    Row("foo.delegated.miek.nl.", "A", **MIEK_REFERRAL),
    Row("foo.delegated.miek.nl.", "TXT", **MIEK_REFERRAL),
    Row("foo.delegated.miek.nl.", "SOA", **MIEK_REFERRAL),
    Row("miek.nl.", "SOA", answer=(MIEK_SOA,), ns=MIEK_AUTH),
    Row("miek.nl.", "AAAA", ns=(MIEK_SOA,)),
)


@one_test_per_row("row", DELEGATION_ROWS, label)
class DelegationTests(ZoneTable):
    zone, origin = "miek.nl.delegation", "miek.nl."

    @defer.inlineCallbacks
    def test_referral_is_not_authoritative(self):
        port = start_daemon(self, self.corefile())
        referral = yield query(port, "foo.delegated.miek.nl.", "A")
        answer = yield query(port, "miek.nl.", "SOA")
        self.assertEqual((bool(referral.flags & dns.flags.AA), bool(answer.flags & dns.flags.AA)), (False, True))


# The signed referral to delegated.example.org. of delegation_test.go
SECURE_REFERRAL = dict(ns=(
    "delegated.example.org. 1800 IN DS 10056 5 1 EE72CABD1927759CDDA92A10DBF431504B9E1F13",
    "delegated.example.org. 1800 IN DS 10056 5 2 E4B05F87725FA86D9A64F1E53C3D0E6250946599DFE639C45955B0ED416CDDFA",
    "delegated.example.org. 1800 IN NS a.delegated.example.org.",
    "delegated.example.org. 1800 IN NS ns-ext.nlnetlabs.nl.",
    "delegated.example.org. 1800 IN RRSIG DS 13 3 1800 20161129153240 20161030153240 49035 example.org. "
    "rlNNzcUmtbjLSl02ZzQGUbWX75yCUx0Mug1jHtKVqRq1hpPE2S3863tIWSlz+W9wz4o19OI4jbznKKqk+DGKog==",
), extra=(
    "a.delegated.example.org. 1800 IN A 139.162.196.78",
    "a.delegated.example.org. 1800 IN AAAA 2a01:7e00::f03c:91ff:fef1:6735",
))

# delegation_test.go secureDelegationTestCases
SECURE_DELEGATION_ROWS = (
    Row("a.delegated.example.org.", "TXT", do=True, **SECURE_REFERRAL),
    Row("delegated.example.org.", "NS", do=True, **SECURE_REFERRAL),
    Row("foo.delegated.example.org.", "A", do=True, **SECURE_REFERRAL),
    Row("foo.delegated.example.org.", "DS", do=True, **SECURE_REFERRAL),
    Row("delegated.example.org.", "DS", do=True, answer=(
        "delegated.example.org. 1800 IN DS 10056 5 1 EE72CABD1927759CDDA92A10DBF431504B9E1F13",
        "delegated.example.org. 1800 IN DS 10056 5 2 E4B05F87725FA86D9A64F1E53C3D0E6250946599DFE639C45955B0ED416CDDFA",
        "delegated.example.org. 1800 IN RRSIG DS 13 3 1800 20161129153240 20161030153240 49035 example.org. rlNNzcUmtbjLSl02ZzQGUbWX75yCUx0Mug1jHtKVqRq1hpPE2S3863tIWSlz+W9wz4o19OI4jbznKKqk+DGKog==",
    ), ns=(
        "example.org. 1800 IN NS a.iana-servers.net.",
        "example.org. 1800 IN NS b.iana-servers.net.",
        "example.org. 1800 IN RRSIG NS 13 2 1800 20161129153240 20161030153240 49035 example.org. llrHoIuw=",
    )),
)


@one_test_per_row("row", SECURE_DELEGATION_ROWS, label)
class SecureDelegationTests(ZoneTable):
    zone, origin = "example.org.signed", "example.org."


# ds_test.go dsTestCases
DS_ROWS = (
    Row("a.delegated.miek.nl.", "DS", **MIEK_REFERRAL),
    Row("_udp.delegated.miek.nl.", "DS", **MIEK_REFERRAL),
    Row("_udp.miek.nl.", "DS", rcode="NXDOMAIN", ns=(MIEK_SOA,)),
    Row("miek.nl.", "DS", ns=(MIEK_SOA,)),
)


@one_test_per_row("row", DS_ROWS, label)
class DsTests(ZoneTable):
    zone, origin = "miek.nl.delegation", "miek.nl."


# wildcard_test.go
DNSSEX_AUTH = (
    "dnssex.nl. 1800 IN NS linode.atoom.net.",
    "dnssex.nl. 1800 IN NS ns-ext.nlnetlabs.nl.",
    "dnssex.nl. 1800 IN NS omval.tednet.nl.",
    "dnssex.nl. 1800 IN RRSIG NS 8 2 1800 20160428190224 20160329190224 14460 dnssex.nl. dLIeEvP86jj5ndkcLzhgvWixTABjWAGRTGQsPsVDFXsGMf9TGGC9FEomgkCVeNC0=",
)

WILDCARD_ROWS = (
    Row("wild.dnssex.nl.", "TXT", answer=(
        'wild.dnssex.nl. 1800 IN TXT "Doing It Safe Is Better"',
    ), ns=DNSSEX_AUTH[:-1]),
    Row("a.wild.dnssex.nl.", "TXT", answer=(
        'a.wild.dnssex.nl. 1800 IN TXT "Doing It Safe Is Better"',
    ), ns=DNSSEX_AUTH[:-1]),
    Row("wild.dnssex.nl.", "TXT", do=True, answer=(
        "wild.dnssex.nl. 1800 IN RRSIG TXT 8 2 1800 20160428190224 20160329190224 14460 dnssex.nl. FUZSTyvZfeuuOpCm",
        'wild.dnssex.nl. 1800 IN TXT "Doing It Safe Is Better"',
    ), ns=(
        "a.dnssex.nl. 14400 IN NSEC www.dnssex.nl. A AAAA RRSIG NSEC",
        "a.dnssex.nl. 14400 IN RRSIG NSEC 8 3 14400 20160428190224 20160329190224 14460 dnssex.nl. S+UMs2ySgRaaRY",
    ) + DNSSEX_AUTH),
    Row("a.wild.dnssex.nl.", "TXT", do=True, answer=(
        "a.wild.dnssex.nl. 1800 IN RRSIG TXT 8 2 1800 20160428190224 20160329190224 14460 dnssex.nl. FUZSTyvZfeuuOpCm",
        'a.wild.dnssex.nl. 1800 IN TXT "Doing It Safe Is Better"',
    ), ns=(
        "a.dnssex.nl. 14400 IN NSEC www.dnssex.nl. A AAAA RRSIG NSEC",
        "a.dnssex.nl. 14400 IN RRSIG NSEC 8 3 14400 20160428190224 20160329190224 14460 dnssex.nl. S+UMs2ySgRaaRY",
    ) + DNSSEX_AUTH),
    Row("wild.dnssex.nl.", "SRV", ns=(
        "dnssex.nl. 1800 IN SOA linode.atoom.net. miek.miek.nl. 1459281744 14400 3600 604800 14400",
    )),
    Row("wild.dnssex.nl.", "SRV", do=True, ns=(
        "*.dnssex.nl. 14400 IN NSEC a.dnssex.nl. TXT RRSIG NSEC",
        "*.dnssex.nl. 14400 IN RRSIG NSEC 8 2 14400 20160428190224 20160329190224 14460 dnssex.nl. os6INm6q2eXknD5z8TaaDOV+Ge/Ko+2dXnKP+J1fqJzafXJVH1F0nDrcXmMlR6jlBHA=",
        "dnssex.nl. 1800 IN RRSIG SOA 8 2 1800 20160428190224 20160329190224 14460 dnssex.nl. CA/Y3m9hCOiKC/8ieSOv8SeP964Bq++lyH8BZJcTaabAsERs4xj5PRtcxicwQXZiF8fYUCpROlUS0YR8Cdw=",
        "dnssex.nl. 1800 IN SOA linode.atoom.net. miek.miek.nl. 1459281744 14400 3600 604800 14400",
    )),
)


@one_test_per_row("row", WILDCARD_ROWS, label)
class WildcardTests(ZoneTable):
    zone, origin = "dnssex.nl.signed", "dnssex.nl."


EXAMPLE_AUTH = (
    "example.org. 3600 IN NS a.iana-servers.net.",
    "example.org. 3600 IN NS b.iana-servers.net.",
)

WILDCARD_DOUBLE_ROWS = (
    Row("wild.w.example.org.", "TXT", answer=('wild.w.example.org. IN TXT "Wildcard"',), ns=EXAMPLE_AUTH),
    Row("wild.c.example.org.", "TXT", answer=('wild.c.example.org. IN TXT "c Wildcard"',), ns=EXAMPLE_AUTH),
    Row("wild.d.example.org.", "TXT", answer=(
        'alias.example.org. IN TXT "Wildcard CNAME expansion"',
        "wild.d.example.org. IN CNAME alias.example.org",
    ), ns=EXAMPLE_AUTH),
    Row("alias.example.org.", "TXT", answer=('alias.example.org. IN TXT "Wildcard CNAME expansion"',), ns=EXAMPLE_AUTH),
)


@one_test_per_row("row", WILDCARD_DOUBLE_ROWS, label)
class DoubleWildcardTests(ZoneTable):
    zone, origin = "example.org", "example.org."


APEX_WILDCARD_ROWS = (
    Row("foo.example.org.", "A", answer=("foo.example.org. 3600 IN A 127.0.0.54",),
        ns=("example.org. 3600 IN NS b.iana-servers.net.",)),
    Row("bar.example.org.", "A", answer=("bar.example.org. 3600 IN A 127.0.0.53",),
        ns=("example.org. 3600 IN NS b.iana-servers.net.",)),
)


@one_test_per_row("row", APEX_WILDCARD_ROWS, label)
class ApexWildcardTests(ZoneTable):
    zone, origin = "example.org.apex-wildcard", "example.org."


MULTI_WILDCARD_ROWS = APEX_WILDCARD_ROWS + (
    Row("bar.intern.example.org.", "A", answer=("bar.intern.example.org. 3600 IN A 127.0.1.52",),
        ns=("example.org. 3600 IN NS b.iana-servers.net.",)),
)


@one_test_per_row("row", MULTI_WILDCARD_ROWS, label)
class MultiWildcardTests(ZoneTable):
    zone, origin = "example.org.double-wildcard", "example.org."


WILDCARD_ADDITIONAL_ROWS = (
    Row("foo.wild.example.org.", "MX", answer=("foo.wild.example.org. 1800 IN MX 10 mail.example.org.",),
        ns=("example.org. 1800 IN NS ns.example.org.",),
        extra=("mail.example.org. 1800 IN A 192.0.2.10", "mail.example.org. 1800 IN AAAA 2001:db8::10")),
)


@one_test_per_row("row", WILDCARD_ADDITIONAL_ROWS, label)
class WildcardAdditionalTests(ZoneTable):
    zone, origin = "example.org.wildcard-additional", "example.org."


CLOSER_ENT_WILDCARD_ROWS = (
    Row("nonexistent.deeper.example.org.", "A", rcode="NXDOMAIN", ns=(
        "example.org. 3600 IN SOA sns.dns.icann.org. noc.dns.icann.org. 2015082541 7200 3600 1209600 3600",
    )),
    Row("nonexistent.example.org.", "A", answer=("nonexistent.example.org. 3600 IN A 127.0.0.53",),
        ns=("example.org. 3600 IN NS b.iana-servers.net.",)),
)


@one_test_per_row("row", CLOSER_ENT_WILDCARD_ROWS, label)
class CloserEmptyNonTerminalTests(ZoneTable):
    zone, origin = "example.org.closer-ent", "example.org."


ENT_WILDCARD_SOA = "example.org. 3600 IN SOA ns.example.org. hostmaster.example.org. 1 7200 3600 1209600 3600"
EMPTY_NON_TERMINAL_WILDCARD_ROWS = (
    Row("something.e.example.org.", "A", ns=(ENT_WILDCARD_SOA,)),
    Row("something.e.example.org.", "AAAA", ns=(ENT_WILDCARD_SOA,)),
    Row("something.somewhere.e.example.org.", "A", ns=(ENT_WILDCARD_SOA,)),
    Row("f.*.e.example.org.", "A", answer=("f.*.e.example.org. 3600 IN A 192.0.2.1",),
        ns=("example.org. 3600 IN NS ns.example.org.",)),
    Row("missing.*.e.example.org.", "A", rcode="NXDOMAIN", ns=(ENT_WILDCARD_SOA,)),
    Row("missing.deep.e.example.org.", "A", rcode="NXDOMAIN", ns=(ENT_WILDCARD_SOA,)),
    Row("something.ordinary.example.org.", "A", answer=("something.ordinary.example.org. 3600 IN A 192.0.2.4",),
        ns=("example.org. 3600 IN NS ns.example.org.",)),
)


@one_test_per_row("row", EMPTY_NON_TERMINAL_WILDCARD_ROWS, label)
class EmptyNonTerminalWildcardTests(ZoneTable):
    zone, origin = "example.org.ent-wildcard", "example.org."


# dnssec_test.go dnssecTestCases
AUTH = (
    "miek.nl. 1800 IN NS ext.ns.whyscream.net.",
    "miek.nl. 1800 IN NS linode.atoom.net.",
    "miek.nl. 1800 IN NS ns-ext.nlnetlabs.nl.",
    "miek.nl. 1800 IN NS omval.tednet.nl.",
    "miek.nl. 1800 IN RRSIG NS 8 2 1800 20160426031301 20160327031301 12051 miek.nl. ZLtsQhwazbqSpztFoR1Vxs=",
)

DNSSEC_ROWS = (
    Row("miek.nl.", "SOA", do=True, answer=(
        "miek.nl. 1800 IN RRSIG SOA 8 2 1800 20160426031301 20160327031301 12051 miek.nl. FIrzy07acBbtyQczy1dc=",
        MIEK_SOA,
    ), ns=AUTH),
    Row("miek.nl.", "AAAA", do=True, answer=(
        "miek.nl. 1800 IN AAAA 2a01:7e00::f03c:91ff:fef1:6735",
        "miek.nl. 1800 IN RRSIG AAAA 8 2 1800 20160426031301 20160327031301 12051 miek.nl. SsRT=",
    ), ns=AUTH),
    Row("miek.nl.", "NS", do=True, answer=(
        "miek.nl. 1800 IN NS ext.ns.whyscream.net.",
        "miek.nl. 1800 IN NS linode.atoom.net.",
        "miek.nl. 1800 IN NS ns-ext.nlnetlabs.nl.",
        "miek.nl. 1800 IN NS omval.tednet.nl.",
        "miek.nl. 1800 IN RRSIG NS 8 2 1800 20160426031301 20160327031301 12051 miek.nl. ZLtsQhwaz+lHfNpztFoR1Vxs=",
    )),
    Row("miek.nl.", "MX", do=True, answer=(
        "miek.nl. 1800 IN MX 1 aspmx.l.google.com.",
        "miek.nl. 1800 IN MX 10 aspmx2.googlemail.com.",
        "miek.nl. 1800 IN MX 10 aspmx3.googlemail.com.",
        "miek.nl. 1800 IN MX 5 alt1.aspmx.l.google.com.",
        "miek.nl. 1800 IN MX 5 alt2.aspmx.l.google.com.",
        "miek.nl. 1800 IN RRSIG MX 8 2 1800 20160426031301 20160327031301 12051 miek.nl. kLqG+iOr=",
    ), ns=AUTH),
    Row("www.miek.nl.", "A", do=True, answer=(
        "a.miek.nl. 1800 IN A 139.162.196.78",
        "a.miek.nl. 1800 IN RRSIG A 8 3 1800 20160426031301 20160327031301 12051 miek.nl. lxLotCjWZ3kihTxk=",
        "www.miek.nl. 1800 IN CNAME a.miek.nl.",
        "www.miek.nl. 1800 RRSIG CNAME 8 3 1800 20160426031301 20160327031301 12051 miek.nl. NVZmMJaypS+wDL2Lar4Zw1zF",
    ), ns=AUTH),
    Row("a.miek.nl.", "SRV", do=True, ns=(
        "a.miek.nl. 14400 IN NSEC archive.miek.nl. A AAAA RRSIG NSEC",
        "a.miek.nl. 14400 IN RRSIG NSEC 8 3 14400 20160426031301 20160327031301 12051 miek.nl. GqnF6cutipmSHEao=",
        "miek.nl. 1800 IN RRSIG SOA 8 2 1800 20160426031301 20160327031301 12051 miek.nl. FIrzy07acBbtyQczy1dc=",
        MIEK_SOA,
    )),
    Row("b.miek.nl.", "A", do=True, rcode="NXDOMAIN", ns=(
        "archive.miek.nl. 14400 IN NSEC go.dns.miek.nl. CNAME RRSIG NSEC",
        "archive.miek.nl. 14400 IN RRSIG NSEC 8 3 14400 20160426031301 20160327031301 12051 miek.nl. jEpx8lcp4do5fWXg=",
        "miek.nl. 14400 IN NSEC a.miek.nl. A NS SOA MX AAAA RRSIG NSEC DNSKEY",
        "miek.nl. 14400 IN RRSIG NSEC 8 2 14400 20160426031301 20160327031301 12051 miek.nl. mFfc3r/9PSC1H6oSpdC",
        "miek.nl. 1800 IN RRSIG SOA 8 2 1800 20160426031301 20160327031301 12051 miek.nl. FIrzy07acBbtyQczy1dc=",
        MIEK_SOA,
    )),
    Row("b.blaat.miek.nl.", "A", do=True, rcode="NXDOMAIN", ns=(
        "archive.miek.nl. 14400 IN NSEC go.dns.miek.nl. CNAME RRSIG NSEC",
        "archive.miek.nl. 14400 IN RRSIG NSEC 8 3 14400 20160426031301 20160327031301 12051 miek.nl. jEpx8lcp4do5fWXg=",
        "miek.nl. 14400 IN NSEC a.miek.nl. A NS SOA MX AAAA RRSIG NSEC DNSKEY",
        "miek.nl. 14400 IN RRSIG NSEC 8 2 14400 20160426031301 20160327031301 12051 miek.nl. mFfc3r/9PSC1H6oSpdC",
        "miek.nl. 1800 IN RRSIG SOA 8 2 1800 20160426031301 20160327031301 12051 miek.nl. FIrzy07acBbtyQczy1dc=",
        MIEK_SOA,
    )),
    Row("b.a.miek.nl.", "A", do=True, rcode="NXDOMAIN", ns=(
        "a.miek.nl. 14400 IN NSEC archive.miek.nl. A AAAA RRSIG NSEC",
        "a.miek.nl. 14400 IN RRSIG NSEC 8 3 14400 20160426031301 20160327031301 12051 miek.nl. GqnF6cut/RRGPQ1QGQE1ipmSHEao=",
        "miek.nl. 1800 IN RRSIG SOA 8 2 1800 20160426031301 20160327031301 12051 miek.nl. FIrzy07acBbtyQczy1dc=",
        MIEK_SOA,
    )),
)


@one_test_per_row("row", DNSSEC_ROWS, label)
class DnssecTests(ZoneTable):
    zone, origin = "miek.nl.signed", "miek.nl."


# ent_test.go entTestCases
ENT_ROWS = (
    Row("b.c.miek.nl.", "A", ns=(MIEK_SOA,)),
    Row("b.c.miek.nl.", "A", do=True, ns=(
        "a.miek.nl. 14400 IN NSEC a.b.c.miek.nl. A RRSIG NSEC",
        "a.miek.nl. 14400 IN RRSIG NSEC 8 3 14400 20160502144311 20160402144311 12051 miek.nl. d5XZEy6SUpq98ZKUlzqhAfkLI9pQPc=",
        "miek.nl. 1800 IN RRSIG SOA 8 2 1800 20160502144311 20160402144311 12051 miek.nl. KegoBxA3Tbrhlc4cEdkRiteIkOfsq",
        MIEK_SOA,
    )),
)


@one_test_per_row("row", ENT_ROWS, label)
class EmptyNonTerminalTests(ZoneTable):
    zone, origin = "miek.nl.ent", "miek.nl."


# glue_test.go atoomTestCases
GLUE_ROWS = (
    Row("atoom.net.", "NS", do=True, answer=(
        "atoom.net. 1800 IN NS linode.atoom.net.",
        "atoom.net. 1800 IN NS ns-ext.nlnetlabs.nl.",
        "atoom.net. 1800 IN NS omval.tednet.nl.",
        "atoom.net. 1800 IN RRSIG NS 8 2 1800 20170112031301 20161213031301 53289 atoom.net. DLe+G1 jlw=",
    ), extra=(
        "linode.atoom.net. 1800 IN A 176.58.119.54",
        "linode.atoom.net. 1800 IN AAAA 2a01:7e00::f03c:91ff:fe79:234c",
        "linode.atoom.net. 1800 IN RRSIG A 8 3 1800 20170112031301 20161213031301 53289 atoom.net. Z4Ka4OLDoyxj72CL vkI=",
        "linode.atoom.net. 1800 IN RRSIG AAAA 8 3 1800 20170112031301 20161213031301 53289 atoom.net. l+9Qc914zFH/okG2fzJ1q olQ=",
    )),
)


@one_test_per_row("row", GLUE_ROWS, label)
class GlueTests(ZoneTable):
    zone, origin = "atoom.net.signed", "atoom.net."


# dname_test.go dnameTestCases
DNAME_ROWS = (
    Row("dname.miek.nl.", "DNAME", answer=("dname.miek.nl. 1800 IN DNAME test.miek.nl.",), ns=MIEK_AUTH),
    Row("dname.miek.nl.", "A", answer=("dname.miek.nl. 1800 IN A 127.0.0.1",), ns=MIEK_AUTH),
    Row("dname.miek.nl.", "MX", answer=(
    ), ns=(MIEK_SOA,)),
    Row("a.dname.miek.nl.", "A", answer=(
        "a.dname.miek.nl. 1800 IN CNAME a.test.miek.nl.",
        "a.test.miek.nl. 1800 IN A 139.162.196.78",
        "dname.miek.nl. 1800 IN DNAME test.miek.nl.",
    ), ns=MIEK_AUTH),
    Row("www.dname.miek.nl.", "A", answer=(
        "a.test.miek.nl. 1800 IN A 139.162.196.78",
        "dname.miek.nl. 1800 IN DNAME test.miek.nl.",
        "www.dname.miek.nl. 1800 IN CNAME www.test.miek.nl.",
        "www.test.miek.nl. 1800 IN CNAME a.test.miek.nl.",
    ), ns=MIEK_AUTH),
)


@one_test_per_row("row", DNAME_ROWS, label)
class DnameTests(ZoneTable):
    zone, origin = "miek.nl.dname", "miek.nl."


# dname_test.go dnameDnssecTestCases: answers only.  The Go test drops SortAndCheck's verdict: its rows leave
# out the NS records in authority, and a.test.example.org, which the CNAME leads to, does not exist, so a real
# server (its upstream asked) answers NXDOMAIN, not the row's NOERROR.
DNAME_DNSSEC_ROWS = (
    Row("ns.example.org.", "A", answer=("ns.example.org. 1800 IN A 127.0.0.1",)),
    Row("dname.example.org.", "DNAME", do=True, answer=(
        "dname.example.org. 1800 IN DNAME test.example.org.",
        "dname.example.org. 1800 IN RRSIG DNAME 5 3 1800 20170702091734 20170602091734 54282 example.org. HvXtiBM=",
    )),
    Row("a.dname.example.org.", "A", do=True, answer=(
        "a.dname.example.org. 1800 IN CNAME a.test.example.org.",
        "dname.example.org. 1800 IN DNAME test.example.org.",
        "dname.example.org. 1800 IN RRSIG DNAME 5 3 1800 20170702091734 20170602091734 54282 example.org. HvXtiBM=",
    )),
)


@one_test_per_row("row", DNAME_DNSSEC_ROWS, label)
class DnameDnssecTests(ZoneTable):
    zone, origin = "example.org.dname.signed", "example.org."

    @defer.inlineCallbacks
    def check_row(self, row: Row):
        port = start_daemon(self, self.corefile())
        reply = yield query(port, row.qname, row.qtype, want_dnssec=row.do)
        self.assertEqual(outcome(reply, row)[1], expected(row)[1])


# svcb_test.go svcbTestCases
SVCB_AUTH = (
    "example.com. 1800 IN NS ns.example.com.",
)

SVC_TARGET_GLUE = ("svc-target.example.com. 1800 IN A 192.0.2.10", "svc-target.example.com. 1800 IN AAAA 2001:db8::10")

SVCB_ROWS = (
    Row("_8443._foo.example.com.", "SVCB", answer=(
        '_8443._foo.example.com. 1800 IN SVCB 1 svc-target.example.com. alpn="h2,h3" port="8443"',
    ), ns=SVCB_AUTH, extra=SVC_TARGET_GLUE),
    Row("www.example.com.", "HTTPS", answer=(
        'www.example.com. 1800 IN HTTPS 1 svc-target.example.com. alpn="h2,h3"',
    ), ns=SVCB_AUTH, extra=SVC_TARGET_GLUE),
    Row("_alias._foo.example.com.", "SVCB", answer=(
        "_alias._foo.example.com. 1800 IN SVCB 0 svc-target.example.com.",
    ), ns=SVCB_AUTH, extra=SVC_TARGET_GLUE),
    Row("_http._tcp.example.com.", "SVCB", answer=(
        '_http._tcp.example.com. 1800 IN SVCB 1 svc-target.example.com. port="443"',
    ), ns=SVCB_AUTH, extra=SVC_TARGET_GLUE),
    Row("svc-target.example.com.", "SVCB", ns=(
        "example.com. 1800 IN SOA ns.example.com. admin.example.com. 2024010100 14400 3600 604800 14400",
    )),
    Row("nonexistent.example.com.", "SVCB", rcode="NXDOMAIN", ns=(
        "example.com. 1800 IN SOA ns.example.com. admin.example.com. 2024010100 14400 3600 604800 14400",
    )),
)


@one_test_per_row("row", SVCB_ROWS, label)
class SvcbTests(ZoneTable):
    zone, origin = "example.com.svcb", "example.com."

    @defer.inlineCallbacks
    def test_private_keys(self):
        """TestSVCBPrivateKeys: DNS-AID's private-use SvcParamKeys come back as the file has them."""
        port = start_daemon(self, self.corefile())
        reply = yield query(port, "_dnsaid.example.com.", "HTTPS")
        self.assertEqual([rdata.to_text() for rrset in reply.answer for rdata in rrset],
                         ['1 svc-target.example.com. alpn="h2" key65400="https://aid.example.com/cap" '
                          'key65401="sha256:e3b0c44298fc" key65406="apphub-psc"'])

    @defer.inlineCallbacks
    def test_target_lowercased(self):
        """TestSVCBTargetNormalization: a target written in capitals is served lower case, and its glue found."""
        path = self.mktemp()
        with open(path, "w") as zone:
            zone.write("$TTL 30M\n$ORIGIN example.com.\n@ IN SOA ns.example.com. admin.example.com. "
                       "2024010100 14400 3600 604800 14400\n@ IN NS ns.example.com.\nns IN A 192.0.2.1\n"
                       "svc IN A 192.0.2.10\n_foo IN SVCB 1 SVC.Example.COM. alpn=h2\n")
        port = start_daemon(self, corefile("example.com:0", f"file {path}"))
        reply = yield query(port, "_foo.example.com.", "SVCB")
        self.assertEqual((section(reply.answer), section(reply.additional)),
                         (['_foo.example.com. 1800 SVCB 1 svc.example.com. alpn="h2"'],
                          ["svc.example.com. 1800 A 192.0.2.10"]))


# apex_test.go TestLookupApex: a zone of its apex alone answers NXDOMAIN (CoreDNS documents it as wrong).
APEX_ROWS = (
    Row("example.com.", "A", rcode="NXDOMAIN", ns=(
        "example.com. 7200 IN SOA ns1.example.com. admin.example.com. 2005011437 1200 144 1814400 7200",
    )),
)


@one_test_per_row("row", APEX_ROWS, label)
class ApexOnlyTests(ZoneTable):
    zone, origin = "example.com.apex", "example.com."


CHILD_REFERRAL = dict(ns=("child.example.org. 300 IN NS ns.child.example.org.",), extra=(
    "ns.child.example.org. 300 IN A 192.0.2.2",
    "ns.child.example.org. 300 IN AAAA 2001:db8::2",
))
HOST_REFERRAL = dict(ns=("host.example.org. 300 IN NS ns.host.example.org.",), extra=(
    "ns.host.example.org. 300 IN A 192.0.2.3",
    "ns.host.example.org. 300 IN AAAA 2001:db8::3",
))

# alias_delegation_test.go TestAliasToDelegation
ALIAS_DELEGATION_ROWS = (
    # CNAME to delegated child
    Row("alias.example.org.", "A", answer=("alias.example.org. 300 IN CNAME host.child.example.org.",), aa=True,
        **CHILD_REFERRAL),
    # CNAME chain to delegated child
    Row("chain.example.org.", "A", answer=(
        "alias.example.org. 300 IN CNAME host.child.example.org.",
        "chain.example.org. 300 IN CNAME alias.example.org.",
    ), aa=True, **CHILD_REFERRAL),
    # wildcard CNAME to delegated child
    Row("name.wild.example.org.", "A", answer=("name.wild.example.org. 300 IN CNAME host.child.example.org.",),
        aa=True, **CHILD_REFERRAL),
    # DNAME to delegated child
    Row("host.mapped.example.org.", "A", answer=(
        "host.mapped.example.org. 300 IN CNAME host.example.org.",
        "mapped.example.org. 300 IN DNAME example.org.",
    ), aa=True, **HOST_REFERRAL),
    # DNAME NS query to delegated child
    Row("host.mapped.example.org.", "NS", answer=(
        "host.mapped.example.org. 300 IN CNAME host.example.org.",
        "mapped.example.org. 300 IN DNAME example.org.",
    ), aa=True, **HOST_REFERRAL),
    # direct delegated child
    Row("host.child.example.org.", "A", aa=False, **CHILD_REFERRAL),
)


@one_test_per_row("row", ALIAS_DELEGATION_ROWS, label)
class AliasToDelegationTests(ZoneTable):
    zone, origin = "example.org.alias-delegation", "example.org."


# alias_delegation_test.go TestSignedAliasToDelegation: the signed example.org with two CNAMEs added.
SIGNED_ALIAS_ROWS = (
    # signed partial referral
    Row("alias.example.org.", "A", do=True, aa=True,
        answer=("alias.example.org. 1800 IN CNAME a.delegated.example.org.",),
        **SECURE_REFERRAL),
    # DS at zone cut remains authoritative
    Row("ds-alias.example.org.", "DS", do=True, aa=True,
        answer=SECURE_DELEGATION_ROWS[4].answer + ("ds-alias.example.org. 1800 IN CNAME delegated.example.org.",),
        ns=SECURE_DELEGATION_ROWS[4].ns),
)


@one_test_per_row("row", SIGNED_ALIAS_ROWS, label)
class SignedAliasToDelegationTests(ZoneTable):
    origin = "example.org."

    def corefile(self) -> str:
        path = self.mktemp()
        shutil.copy(os.path.join(ZONES, "example.org.signed"), path)
        with open(path, "a") as zone:
            zone.write("alias.example.org. 1800 IN CNAME a.delegated.example.org.\n"
                       "ds-alias.example.org. 1800 IN CNAME delegated.example.org.\n")
        return corefile("example.org:0", f"file {path}")
