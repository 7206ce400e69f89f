"""
file's setup and life in a daemon: CoreDNS's setup rows through the Corefile
(C{setup_test.go}), the file read again when it changes (C{reload_test.go}:
L{ReloadTests}, L{RereadTests}), the chain around the plugin and transfers
(C{xfr_test.go}: L{ChainTests}), and its replies kept and sent again.
"""

from __future__ import annotations

import os

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdatatype
from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from kubernetai.corefile import CorefileError
from kubernetai.plugins.file import Source, reread
from tests.support import (build, capture_logs, one_test_per_row, query, start_daemon, start_daemon_service,
                           wait_until)
from tests.test_file import MIEK, MIEK_SOA, ZONES, corefile


def setup_outcome(lines: str, keys: str = "example.org:0"):
    """The plan line of a block's C{file} directives, or the error that stops it."""
    try:
        config = build(corefile(keys, lines))
    except CorefileError as err:
        return str(err)
    return [line for line in config.plan if line.startswith("file ")]


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


class UpstreamDnssecTests(unittest.TestCase):
    """A CNAME leaving the zone, asked with DO: the server asks for its target with the DO bit too (as
    CoreDNS's upstream copies the query), so the target's records come with their signatures."""

    @defer.inlineCallbacks
    def test_target_signed(self):
        zone = self.mktemp()
        with open(zone, "w") as text:
            text.write("$TTL 300\n@ IN SOA ns.example.com. admin.example.com. 1 7200 1800 86400 300\n"
                       "@ IN NS ns.example.com.\nout IN CNAME a.miek.nl.\n")
        port = start_daemon(self, corefile("example.com:0", f"file {zone} example.com")
                            + corefile("miek.nl:0", f"file {os.path.join(ZONES, 'miek.nl.signed')} miek.nl"))
        signed = yield query(port, "out.example.com", "A", want_dnssec=True)
        plain = yield query(port, "out.example.com", "A")
        self.assertEqual([(rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype)) for rrset in signed.answer],
                         [("out.example.com.", "CNAME"), ("a.miek.nl.", "A"), ("a.miek.nl.", "RRSIG")])
        self.assertEqual([dns.rdatatype.to_text(rrset.rdtype) for rrset in plain.answer], ["CNAME", "A"])
