# -*- test-case-name: tests.test_fuzz -*-
"""
Fuzz target: any bytes as a DNS query, the whole way a UDP datagram or a TCP
stream takes through the server (decode, route, the chain, encode), without
sockets.  The zone table is a real Corefile's: whoami, rewrite, autopath,
cache, hosts, template, kubernetai stanzas answering from the cluster of
CoreDNS's handler tests (L{tests.k8sdata.SERVE_TEST}) as if synced (one of
them, alike.test, in a block whose denials are given alike), and a signed
zone of the file plugin (dnssex.nl).

Besides "no exception" (a failure our code logs and swallows counts as one),
every reply must parse, have QR set and the query's ID, fit the client's
buffer over UDP (512 octets without EDNS, the advertised size with it), and,
when the server keeps it to send again, be the same reply as the one just
built; a denial given alike (L{kubernetai.alike}) must be the chain's reply.  The bytes are also read as a TCP stream: its framing must account
for every byte (or refuse a length no message has), and every whole message
in it is answered over TCP.

    python -m tests.fuzz.packet tests/fuzz/corpus/packet -max_total_time=3600
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile

import atheris
import dns.flags
import dns.message
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from tests.fuzz import failures_raised, instrumented

with instrumented(__name__):
    from kubernetai.daemon import build_daemon
    from kubernetai.message import StreamError, frame, split_stream
    from kubernetai.answer import ZoneTable, answer_packet
    from tests.k8sdata import SERVE_TEST, snapshot

COREFILE = r"""
.:53 {
    errors
    loadbalance
    rewrite name suffix .alias.test. .svc.cluster.local. answer auto
    rewrite continue type ANY HINFO
    rewrite name regex ^(.*)\.re\.test\.$ {1}.testns.svc.cluster.local. answer name ^(.*)\.testns\.svc\.cluster\.local\.$ {1}.re.test.
    autopath @kubernetai
    cache 30
    hosts {
        192.0.2.1 inline.test
        2001:db8::1 inline.test six.test
        fallthrough
    }
    kubernetai cluster.local in-addr.arpa ip6.arpa {
        endpoint http://127.0.0.1:1
        pods verified
        fallthrough in-addr.arpa ip6.arpa
    }
    kubernetes other.local {
        endpoint http://127.0.0.1:1
        endpoint_pod_names
        ignore empty_service
        ttl 0
        fallthrough
    }
    file @ZONES@/dnssex.nl.signed dnssex.nl {
        reload 0
    }
}
whoami.test {
    whoami
}
alike.test {
    errors
    loadbalance
    kubernetai alike.test {
        endpoint http://127.0.0.1:1
    }
}
template.test {
    errors
    template IN A template.test {
        match "^ip-(?P<a>[0-9]+)-(?P<b>[0-9a-f]{1,2})[.]template[.]test[.]$"
        answer "{{ .Name }} 60 IN A 10.0.{{ .Group.a }}.{{ parseInt .Group.b 16 8 }}"
        fallthrough
    }
    template ANY ANY template.test {
        match "^(?P<label>[^.]*)[.]"
        answer "{{ .Name }} 60 {{ .Class }} TXT \"{{ .Group.label }}\" \"{{ .Question.Name }}\" {{ .Message.Id }}"
        additional "{{ if index .Match 1 }}{{ index .Match 1 }}.template.test. 60 IN CNAME {{ .Name }}{{ end }}"
        ederror 21 "{{ .Remote }}"
    }
    whoami
}
"""
ZONES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "file_zones")
# Pod podns/foo of SERVE_TEST: autopath finds the client's namespace from it.
CLIENT = ("10.240.0.1", 40000)
LOCAL = ("10.0.0.53", 53)
UDP_MINIMUM = 512
TCP_MAXIMUM = 65535


@functools.cache
def zone_table() -> ZoneTable:
    """The table of L{COREFILE}'s port, its stanzas holding SERVE_TEST and synced; built once."""
    directory = tempfile.mkdtemp(prefix="kubernetai-fuzz-")
    try:
        path = os.path.join(directory, "Corefile")
        with open(path, "w") as corefile:
            corefile.write(COREFILE.replace("@ZONES@", ZONES))
        daemon = build_daemon(path)
    finally:
        shutil.rmtree(directory)
    # What a stanza's index thread does once its watches have listed, without an API server.
    for stanza in daemon.shared.stanzas:
        stanza.cluster.snapshot = snapshot(SERVE_TEST)
        stanza.cluster.synced = True
    (table,) = daemon.tables.values()
    return table


def test_one_input(data: bytes) -> None:
    """Answer C{data} as a datagram and as a TCP stream; fail on any broken invariant."""
    with failures_raised():
        answer_datagram(zone_table(), data)
        answer_stream(zone_table(), data)


def answer_datagram(table: ZoneTable, packet: bytes) -> None:
    ready = table.ready_reply(packet)
    if ready is not None:
        check_datagram(packet, ready[0])
    alike = table.alike_reply(packet)
    reply = settled(answer_packet(table, packet, CLIENT, "udp", LOCAL))
    if alike is not None:
        assert alike[0] == reply, "a denial given alike is not the chain's reply"
    if reply is None:
        return
    sent = check_datagram(packet, reply)
    kept = table.ready_reply(packet)
    if kept is not None:
        assert check_datagram(packet, kept[0]) == sent, "the reply kept to send again is not the one just sent"


def answer_stream(table: ZoneTable, stream: bytes) -> None:
    try:
        messages, rest = split_stream(stream)
    except StreamError:
        return
    assert b"".join(frame(message) for message in messages) + rest == stream, "framing lost bytes"
    assert len(rest) < 2 or int.from_bytes(rest[:2], "big") > len(rest) - 2, "a whole message was left"
    for message in messages:
        reply = settled(answer_packet(table, message, CLIENT, "tcp", LOCAL))
        for each in [reply] if isinstance(reply, bytes) else reply or []:
            check_reply(message, each)
            assert len(each) <= TCP_MAXIMUM


def settled(result):
    """What answer_packet answered; with no I/O behind the chain, a Deferred has fired already."""
    if not isinstance(result, Deferred):
        return result
    outcome = []
    result.addBoth(outcome.append)
    assert outcome, "a reply that waits with nothing to wait for"
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


def check_datagram(packet: bytes, reply: bytes) -> dns.message.Message:
    """A UDP reply to C{packet}, checked, and its size within what the client takes; parsed."""
    message = check_reply(packet, reply)
    limit = udp_limit(packet, message)
    assert len(reply) <= limit, f"a UDP reply of {len(reply)} octets to a client that takes {limit}"
    return message


def check_reply(packet: bytes, reply: bytes) -> dns.message.Message:
    """A reply to C{packet}: it parses, and is a response with the query's ID; parsed."""
    message = dns.message.from_wire(reply)
    assert message.flags & dns.flags.QR, "a reply without QR"
    assert message.id == int.from_bytes(packet[:2], "big"), "a reply with another ID"
    return message


def udp_limit(packet: bytes, reply: dns.message.Message) -> int:
    """The largest UDP reply the sender of C{packet} takes, as dnspython reads its EDNS.

    For a query dnspython cannot read, the reply's own OPT record says what the server read.
    """
    try:
        query = dns.message.from_wire(packet, ignore_trailing=True)
    except Exception:
        query = reply
    return max(UDP_MINIMUM, query.payload) if query.edns >= 0 else UDP_MINIMUM


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
