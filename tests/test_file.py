"""
file through a running daemon: the rows of CoreDNS's C{plugin/file} handler
tests, one test per row, each asking a daemon serving that test's zone file
(C{tests/file_zones/}) over UDP and comparing rcode and sections as CoreDNS's
C{test.SortAndCheck} does (L{record_key}); its setup rows through the
Corefile; its DNAME substitution, wildcard label and closest encloser tables
on the functions; and ours: reload, kept replies, transfer, the chain around
the plugin and the zone files kubernetai refuses.

The rows' next plugin (CoreDNS's C{test.ErrorHandler}, SERVFAIL) is the end
of the chain, which answers SERVFAIL too.  The upstream of a CNAME leaving
the zone is the daemon itself: a block for C{example.com} whose C{hosts}
answers SERVFAIL stands for the unit tests' missing server.

reload_test.go's cases are L{ReloadTests} and L{RereadTests}, xfr_test.go's
are in L{ChainTests}.  Not ported: escape_test.go (a dot inside a label,
C{has\\.dot}, which Twisted's names cannot tell from two labels);
zone_test.go and delete_test.go, which call the Go zone's methods;
secondary_test.go, nsec3_test.go and the benchmarks (no secondary zones;
NSEC3 is refused at start-up, as there).
"""

from __future__ import annotations

import io
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
from twisted.internet.threads import deferToThread
from twisted.names import dns as tdns
from twisted.trial import unittest

from kubernetai.corefile import CorefileError
from kubernetai.plugins.file import Source, reread
from kubernetai.plugins.file.lookup import DNAME, asterisk_of, closest_encloser, synthesize_cname
from kubernetai.plugins.file.zone import name_key, read_zone
from tests.support import (build, capture_logs, one_test_per_row, query, start_daemon, start_daemon_service,
                           wait_until)

ZONES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "file_zones")


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


def setup_outcome(lines: str, keys: str = "example.org:0"):
    """The plan line of a block's C{file} directives, or the error that stops it."""
    try:
        config = build(corefile(keys, lines))
    except CorefileError as err:
        return str(err)
    return [line for line in config.plan if line.startswith("file ")]


MIEK = os.path.join(ZONES, "miek.nl")
DNSSEX = os.path.join(ZONES, "dnssex.nl.signed")

# setup_test.go TestFileParse and TestParseReload: (directive, the plan it gives or its error)
SETUP_ROWS = (
    (f"file {MIEK} miek.nl.", [f"file {MIEK} miek.nl. reload every 60s"]),
    (f"file {DNSSEX} dnssex.nl.", [f"file {DNSSEX} dnssex.nl. reload every 60s"]),
    # CoreDNS serves the dnssex.nl records as 10.in-addr.arpa. and example.org.; kubernetai keeps only the
    # records inside the zone and refuses a zone without its SOA.
    (f"file {DNSSEX} 10.0.0.0/8",
     f"Corefile:3: plugin/file: file {DNSSEX!r} has no SOA record for origin 10.in-addr.arpa."),
    (f"file {DNSSEX} example.org. {{\n fallthrough\n }}",
     f"Corefile:3: plugin/file: file {DNSSEX!r} has no SOA record for origin example.org."),
    (f"file {DNSSEX} dnssex.nl. {{\n fallthrough\n }}", [f"file {DNSSEX} dnssex.nl. reload every 60s fallthrough ."]),
    (f"file {DNSSEX} dnssex.nl. {{\n fallthrough www.dnssex.nl\n }}",
     [f"file {DNSSEX} dnssex.nl. reload every 60s fallthrough www.dnssex.nl."]),
    (f"file {MIEK} miek.nl {{\n transfer from 127.0.0.1\n }}",
     "Corefile:4: plugin/file: unknown property 'transfer': expected reload, reload_by_mtime, fallthrough or "
     "upstream"),
    ("file", "Corefile:3: plugin/file: Wrong argument count or unexpected line ending after 'file'"),
    (f"file {MIEK} example.net. {{\n no_reload\n }}",
     "Corefile:4: plugin/file: unknown property 'no_reload': did you mean 'reload'?"),
    (f"file {MIEK} example.net. {{\n no_rebloat\n }}",
     "Corefile:4: plugin/file: unknown property 'no_rebloat': did you mean 'reload'?"),
    (f"file {MIEK} miek.nl. {{\n reload 5s\n }}", [f"file {MIEK} miek.nl. reload every 5s"]),
    # ours: the other options, and the zone files kubernetai refuses
    (f"file {MIEK} miek.nl. {{\n reload 0\n upstream 8.8.8.8\n }}", [f"file {MIEK} miek.nl. no reload"]),
    (f"file {MIEK} miek.nl. {{\n reload_by_mtime\n }}", [f"file {MIEK} miek.nl. reload every 60s (by mtime)"]),
    (f"file {MIEK} miek.nl. {{\n reload\n }}", "Corefile:4: plugin/file: reload duration value is expected"),
    (f"file {MIEK} miek.nl. {{\n reload -5s\n }}",
     "Corefile:4: plugin/file: reload duration must not be negative: '-5s'"),
    (f"file {MIEK} miek.nl.\n    file {DNSSEX} dnssex.nl.",
     [f"file {MIEK} miek.nl. reload every 60s", f"file {DNSSEX} dnssex.nl. reload every 60s"]),
    (f"file {ZONES}/missing miek.nl. {{\n reload 0\n }}",
     f"Corefile:3: plugin/file: open {ZONES}/missing: no such file or directory"),
    (f"file {ZONES}/missing miek.nl.", [f"file {ZONES}/missing miek.nl. reload every 60s"]),
    (f"file {ZONES} miek.nl.", f"Corefile:3: plugin/file: file {ZONES!r} is not a regular file"),
    ("file /dev/zero miek.nl.", "Corefile:3: plugin/file: file '/dev/zero' is not a regular file"),
)


@one_test_per_row("row", SETUP_ROWS, lambda row: row[0].split("\n")[0].replace(ZONES, ""))
class SetupTests(unittest.SynchronousTestCase):
    def check_row(self, row):
        lines, wanted = row
        self.assertEqual(setup_outcome(lines), wanted)

    def write(self, text: str) -> str:
        path = self.mktemp()
        with open(path, "w") as zone:
            zone.write(text)
        return path

    def test_unchanged_file_read_once(self):
        """Set up again (a Corefile reload), a zone whose file is unchanged is the one already read."""
        path = self.write(ZONE.format(serial=1, address="192.0.2.1"))
        text = corefile("example.org:0", f"file {path}")
        first, again = build(text), build(text)
        write_zone(path, 2, "192.0.2.2")
        changed = build(text)
        zones = [config.handlers[0].zones["example.org."] for config in (first, again, changed)]
        self.assertEqual((zones[1] is zones[0], zones[2] is zones[0], zones[2].serial), (True, False, 2))

    def test_nsec3_refused(self):
        path = self.write("$ORIGIN example.org.\n@ 3600 SOA ns hostmaster 1 2 3 4 5\n@ 3600 NS ns\n"
                          "@ 3600 NSEC3PARAM 1 0 10 AABBCCDD\n")
        self.assertEqual(setup_outcome(f"file {path}"),
                         "Corefile:3: plugin/file: NSEC3 zone is not supported, dropping RR: example.org. for zone: "
                         "example.org.")

    def test_not_utf8_refused(self):
        path = self.write("")
        with open(path, "wb") as zone:
            zone.write(b"$ORIGIN example.org.\n@ 3600 SOA ns hostmaster 1 2 3 4 5\nwww 3600 TXT \"caf\xe9\"\n")
        self.assertEqual(setup_outcome(f"file {path}"), f"Corefile:3: plugin/file: failed to parse file {path!r} for "
                                                          "origin example.org.: it is not UTF-8 text")

    def test_soa_away_from_origin_refused(self):
        """As a file of example.org. read for the root zone (CoreDNS's README warns of it; CoreDNS serves it)."""
        self.assertEqual(setup_outcome(f"file {MIEK} .", keys=".:0"),
                         f"Corefile:3: plugin/file: failed to parse file {MIEK!r} for origin . with error add() has "
                         "non-origin SOA")

    def test_missing_include_refused(self):
        path = self.write(f"$ORIGIN example.org.\n@ 3600 SOA ns hostmaster 1 2 3 4 5\n$INCLUDE {ZONES}/missing\n")
        self.assertEqual(setup_outcome(f"file {path}"),
                         f"Corefile:3: plugin/file: failed to parse file {path!r} for origin example.org. with error "
                         f"[Errno 2] No such file or directory: '{ZONES}/missing'")

    def test_syntax_error_names_file_and_line(self):
        path = self.write("$ORIGIN example.org.\n@ 3600 SOA ns hostmaster 1 2 3 4 5\nwww 3600 A 300.1.2.3\n")
        self.assertEqual(setup_outcome(f"file {path}"),
                         f"Corefile:3: plugin/file: failed to parse file {path!r} for origin example.org. with error "
                         f"{path}:4: Text input is malformed.")


ZONE = """$ORIGIN example.org.
@ 3600 SOA ns hostmaster {serial} 7200 3600 1209600 3600
@ 3600 NS ns
ns 3600 A 192.0.2.53
www 3600 A {address}
"""


def write_zone(path: str, serial: int, address: str, text: str = ZONE) -> None:
    """Replace the zone file at C{path} as an editor saving it does (a new file renamed over it)."""
    with open(path + ".new", "w") as zone:
        zone.write(text.format(serial=serial, address=address))
    os.replace(path + ".new", path)


def address_of(reply: dns.message.Message) -> str | None:
    found = [rdata.address for rrset in reply.answer for rdata in rrset if rrset.rdtype == dns.rdatatype.A]
    return found[0] if found else dns.rcode.to_text(reply.rcode())


class RereadTests(unittest.SynchronousTestCase):
    """What the reloader's thread makes of a zone file that changed, or did not."""

    def setUp(self):
        self.path = self.mktemp()
        write_zone(self.path, 1, "192.0.2.1")
        self.source = Source("example.org.", self.path)
        self.seen, self.zone, _ = reread(self.source, None, -1)

    def test_new_serial_read(self):
        write_zone(self.path, 2, "192.0.2.2")
        seen, zone, error = reread(self.source, self.seen, self.zone.serial)
        self.assertEqual((zone.serial, seen != self.seen, error), (2, True, None))

    def test_same_serial_kept(self):
        write_zone(self.path, 1, "192.0.2.2")
        seen, zone, error = reread(self.source, self.seen, self.zone.serial)
        self.assertEqual((zone, seen != self.seen, error), (None, True, None))

    def test_same_serial_read_by_mtime(self):
        write_zone(self.path, 1, "192.0.2.2")
        seen, zone, error = reread(self.source, self.seen, -1)
        self.assertEqual((zone.serial, error), (1, None))

    def test_unchanged_file_not_parsed(self):
        """A file whose mtime, size and inode are the ones last seen is not read: a new serial in it goes unseen."""
        with open(self.path, "w") as zone:
            zone.write(ZONE.format(serial=2, address="192.0.2.1"))
        os.utime(self.path, ns=(self.seen[0], self.seen[0]))
        seen, zone, error = reread(self.source, self.seen, self.zone.serial)
        self.assertEqual((seen, zone, error), (self.seen, None, None))

    def test_broken_file_reported(self):
        write_zone(self.path, 3, "192.0.2.300")
        seen, zone, error = reread(self.source, self.seen, self.zone.serial)
        self.assertEqual((zone, str(error)), (None, f"failed to parse file {self.path!r} for origin example.org. "
                                                   f"with error {self.path}:6: Text input is malformed."))

    def test_missing_file_raises(self):
        os.remove(self.path)
        self.assertRaises(FileNotFoundError, reread, self.source, self.seen, self.zone.serial)


class ReloadTests(unittest.TestCase):
    """A running daemon serves a zone file's new serial once its reload has read it, and keeps the old zone
    through a file that fails to parse."""

    def start(self, serial: int = 1, options: str = "reload 50ms"):
        self.path = self.mktemp()
        if serial:
            write_zone(self.path, serial, "192.0.2.1")
        return start_daemon(self, corefile("example.org:0", f"file {self.path} {{\n        {options}\n    }}"))

    def www(self, port: int):
        return query(port, "www.example.org.", "A").addCallback(address_of)

    @defer.inlineCallbacks
    def test_new_serial_served(self):
        port = self.start()
        logs = capture_logs(self)
        self.assertEqual((yield self.www(port)), "192.0.2.1")
        write_zone(self.path, 2, "192.0.2.2")
        yield wait_until(lambda: self.www(port).addCallback(lambda address: address == "192.0.2.2"),
                         "the new serial's address")
        self.assertIn(f"Successfully reloaded zone 'example.org.' in {self.path!r} with 2 SOA serial", logs)

    @defer.inlineCallbacks
    def test_broken_file_keeps_old_zone(self):
        port = self.start()
        logs = capture_logs(self)
        write_zone(self.path, 2, "192.0.2.300")
        yield wait_until(lambda: any(line.startswith("Parsing zone 'example.org.'") for line in logs),
                         "the parse error logged")
        self.assertEqual((yield self.www(port)), "192.0.2.1")
        write_zone(self.path, 3, "192.0.2.3")
        yield wait_until(lambda: self.www(port).addCallback(lambda address: address == "192.0.2.3"),
                         "the fixed file's address")

    @defer.inlineCallbacks
    def test_missing_file_served_once_there(self):
        port = self.start(serial=0)
        self.assertEqual((yield self.www(port)), "SERVFAIL")
        write_zone(self.path, 1, "192.0.2.1")
        yield wait_until(lambda: self.www(port).addCallback(lambda address: address == "192.0.2.1"),
                         "the file's address")

    @defer.inlineCallbacks
    def test_removed_file_keeps_zone(self):
        """reload_test.go FileMissingDuringReload: the zone keeps serving; the log says why it is not read."""
        port = self.start()
        logs = capture_logs(self)
        os.remove(self.path)
        yield wait_until(lambda: any(line.startswith("Failed to open zone 'example.org.'") for line in logs),
                         "the missing file logged")
        self.assertEqual((yield self.www(port)), "192.0.2.1")

    @defer.inlineCallbacks
    def test_by_mtime_same_serial_served(self):
        """reload_test.go ContentVerificationAfterReload: with reload_by_mtime a change is served, serial or not."""
        port = self.start(options="reload 50ms\n        reload_by_mtime")
        write_zone(self.path, 1, "192.0.2.2")
        yield wait_until(lambda: self.www(port).addCallback(lambda address: address == "192.0.2.2"),
                         "the changed file's address")


class ChainTests(unittest.TestCase):
    """Where the file plugin sits in the chain, and what it leaves to others."""

    @defer.inlineCallbacks
    def test_outside_zones_refused_when_last(self):
        port = start_daemon(self, corefile("miek.nl:0 example.net:0", f"file {MIEK} miek.nl"))
        reply = yield query(port, "www.example.net.", "A")
        self.assertEqual(dns.rcode.to_text(reply.rcode()), "REFUSED")

    @defer.inlineCallbacks
    def test_outside_zones_next_plugin(self):
        port = start_daemon(self, corefile("miek.nl:0 example.net:0", f"file {MIEK} miek.nl\n    whoami"))
        reply = yield query(port, "www.example.net.", "A")
        self.assertEqual((dns.rcode.to_text(reply.rcode()), len(reply.additional)), ("NOERROR", 2))

    @defer.inlineCallbacks
    def test_transfer_without_transfer_plugin_refused(self):
        port = start_daemon(self, corefile("miek.nl:0", f"file {MIEK}"))
        reply = yield query(port, "miek.nl.", "AXFR", tcp=True)
        self.assertEqual(dns.rcode.to_text(reply.rcode()), "REFUSED")

    @defer.inlineCallbacks
    def test_axfr_through_transfer(self):
        """AXFR as CoreDNS's xfr.go sends it: SOA, the apex, every name in canonical order, SOA (a name's types
        in the file's order, where CoreDNS's come in a Go map's)."""
        port = start_daemon(self, corefile("miek.nl:0", f"file {MIEK}\n    transfer {{\n        to *\n    }}"))
        messages = yield deferToThread(lambda: list(dns.query.xfr("127.0.0.1", "miek.nl.", port=port, timeout=5,
                                                                           relativize=False)))
        records = [f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}" for message in messages
                   for rrset in message.answer for _ in rrset]
        self.assertEqual(records, ["miek.nl. SOA"] + ["miek.nl. NS"] * 4 + ["miek.nl. MX"] * 5
                         + ["miek.nl. A", "miek.nl. AAAA", "a.miek.nl. A", "a.miek.nl. AAAA", "archive.miek.nl. CNAME",
                                                  "caa.miek.nl. CAA", "dname.miek.nl. DNAME",
                                                  "ext-cname.miek.nl. CNAME", "mx.miek.nl. MX",
                                                  "*.nodata.miek.nl. A", "srv.miek.nl. SRV", "txt.miek.nl. TXT",
                                                  "www.miek.nl. CNAME", "*.x.miek.nl. CNAME", "b.x.miek.nl. CNAME",
                                                  "*.y.miek.nl. A", "miek.nl. SOA"])

    @defer.inlineCallbacks
    def test_ixfr_of_current_serial(self):
        port = start_daemon(self, corefile("miek.nl:0", f"file {MIEK}\n    transfer {{\n        to *\n    }}"))
        messages = yield deferToThread(lambda: list(dns.query.xfr(
            "127.0.0.1", "miek.nl.", "IXFR", port=port, timeout=5, serial=1282630057, relativize=False)))
        self.assertEqual([rrset.to_text() for message in messages for rrset in message.answer],
                         [MIEK_SOA])


class KeptReplyTests(unittest.TestCase):
    """The server sends a zone's answer again while the zone it came from is served, never one that went
    through the server's upstream."""

    @defer.inlineCallbacks
    def kept_after(self, name: str) -> int:
        dns_service = start_daemon_service(self, corefile("miek.nl:0", f"file {MIEK}")).getServiceNamed("dns")
        yield dns_service.listening
        port = dns_service.addresses()[0][2]
        for _ in range(2):
            yield query(port, name, "A")
        return sum(table.kept_replies() for table in dns_service.tables.values())

    @defer.inlineCallbacks
    def test_zone_answer_kept(self):
        self.assertEqual((yield self.kept_after("www.miek.nl.")), 1)

    @defer.inlineCallbacks
    def test_upstream_answer_not_kept(self):
        self.assertEqual((yield self.kept_after("ext-cname.miek.nl.")), 0)


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
