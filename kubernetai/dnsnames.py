# -*- test-case-name: tests.test_dnsnames -*-
"""
DNS's names of rcodes, query types and opcodes, spelled as miekg/dns (and so
CoreDNS) spells them: in log lines, metric labels and Corefile options.
"""

from __future__ import annotations

from twisted.names import dns

RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
               6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 16: "BADVERS"}
RCODES = {name: code for code, name in RCODE_NAMES.items()}
OPCODE_NAMES = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE"}
# Twisted's type names, ANY as miekg/dns calls it, and the types Twisted lacks that clients ask for.
TYPE_NAMES = {**dns.QUERY_TYPES, **dns.EXT_QUERIES, dns.ALL_RECORDS: "ANY", 43: "DS", 46: "RRSIG", 47: "NSEC",
              48: "DNSKEY", 50: "NSEC3", 52: "TLSA", 64: "SVCB", 65: "HTTPS", 257: "CAA"}
TYPES = {name: code for code, name in TYPE_NAMES.items()}


def type_name(qtype: int) -> str:
    return TYPE_NAMES.get(qtype) or f"TYPE{qtype}"


def rcode_name(rcode: int) -> str:
    return RCODE_NAMES.get(rcode, f"RCODE{rcode}")
