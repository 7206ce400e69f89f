# -*- test-case-name: tests.test_fuzz -*-
"""
Fuzz target: the body of a watch response, as a broken or hostile API
server might send it, through what a stanza does with it: split into lines
as they arrive, each line decoded and handed to the watch of every kind
(each with its own reducer), the changes applied to an index L{Store} and
published.

A line may become changes for the index, be skipped, or raise the watch's
own errors (L{Expired}, L{WatchError}: the watch lists or watches again);
nothing else.  The last snapshot must then answer for all it holds: every
one of its addresses is an IP address, and its zones transferred, its
services and pods looked up and its addresses reversed, give records that
encode.

Inputs are JSON lines.  The custom mutator mostly changes their structure
(a value replaced by one of another type or by a piece of another object,
a key dropped, an event's type changed), so that mutations get past
C{json.loads}; now and then it mutates the bytes.

    python -m tests.fuzz.watch_event tests/fuzz/corpus/watch_event -max_total_time=3600
"""

from __future__ import annotations

import functools
import ipaddress
import json
import random
import sys
from io import BytesIO

import atheris

from tests.fuzz import failures_raised, instrumented

with instrumented(__name__):
    from twisted.names import dns

    from kubernetai.corefile import parse_corefile
    from kubernetai.kubernetes.config import StanzaConfig, parse_stanza
    from kubernetai.kubernetes.index import Store
    from kubernetai.kubernetes.kinds import Changed, Kind
    from kubernetai.kubernetes.entries import View
    from kubernetai.kubernetes.records import answer
    from kubernetai.kubernetes.watch import Expired, Limits, TokenBucket, WatchError, Watcher, decode_event, stream_lines
    from kubernetai.kubernetes.xfr import zone_transfer

STANZA = """\
.:53 {
    kubernetai cluster.local clusterset.local in-addr.arpa ip6.arpa {
        endpoint http://127.0.0.1:1
        pods verified
        multicluster clusterset.local
    }
}
"""
CHUNK_SIZE = 7
BYTE_MUTATIONS = 8


@functools.cache
def stanza_config() -> StanzaConfig:
    (block,) = parse_corefile(STANZA, "Corefile", environ={})
    return parse_stanza(block.directives[0], [address.zone for address in block.addresses])


class Body:
    """A watch response's body as urllib3 streams it: in chunks that split lines anywhere."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, amt=None, decode_content=None):
        for start in range(0, len(self.data), CHUNK_SIZE):
            yield self.data[start : start + CHUNK_SIZE]


def test_one_input(data: bytes) -> None:
    """Run C{data} through a watch of every kind into one index; check what that index answers."""
    store = Store()
    changes: list = []
    watchers = [Watcher(kind, None, changes.append, Limits(TokenBucket(0, 1))) for kind in Kind]
    with failures_raised():
        for line in stream_lines(Body(data)):
            for watcher in watchers:
                try:
                    version = watcher.handle_event(decode_event(line), "1")
                except (Expired, WatchError):
                    continue
                assert isinstance(version, str), f"resourceVersion {version!r} to watch from"
            for change in changes:
                if isinstance(change, Changed):
                    store.put(change.kind, change.obj)
                else:
                    store.delete(change.kind, (change.obj.namespace, change.obj.name))
            changes.clear()
            store.publish()
        check_answers(View(stanza_config(), store.snapshot))


def check_answers(view: View) -> None:
    """Everything C{view} holds can be answered, and every record of those answers encodes."""
    snapshot = view.snapshot
    addresses = list(snapshot.reverse) + list(snapshot.pods_by_ip)
    for ip in addresses:
        assert is_ip_address(ip), f"{ip!r} in the index is no IP address"
    for zone in ("cluster.local.", "clusterset.local."):
        encode(zone_transfer(view, zone))
    questions = [(f"{name}.{namespace}.svc.cluster.local.", qtype)
                 for namespace, name in snapshot.services for qtype in (dns.A, dns.SRV, dns.TXT)]
    questions += [(f"{name}.{namespace}.svc.clusterset.local.", dns.SRV) for namespace, name in snapshot.imports]
    questions += [(f"{ip.replace('.', '-').replace(':', '-')}.{pods[0].namespace}.pod.cluster.local.", dns.A)
                  for ip, pods in snapshot.pods_by_ip.items()]
    questions += [(ipaddress.ip_address(ip).reverse_pointer + ".", dns.PTR) for ip in snapshot.reverse]
    for name, qtype in questions:
        zone = next(zone for zone in view.config.zones if name.endswith("." + zone))
        response = answer(view, name.rstrip(".").encode(), name, qtype, zone)
        encode(response.answers + response.authority + response.additional)


def is_ip_address(text) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def encode(records: list) -> None:
    body = BytesIO()
    for record in records:
        record.encode(body, {})


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """C{data}'s JSON lines with one structural change; libFuzzer's byte mutation now and then."""
    chooser = random.Random(seed)
    try:
        events = [json.loads(line) for line in data.splitlines() if line.strip()]
    except ValueError:
        events = []
    if not events or chooser.randrange(BYTE_MUTATIONS) == 0:
        return atheris.Mutate(data, max_size)
    index = chooser.randrange(len(events))
    events[index] = changed(events[index], events, chooser)
    mutated = b"\n".join(json.dumps(event).encode() for event in events)
    return mutated if len(mutated) <= max_size else atheris.Mutate(data, max_size)


def changed(value, events: list, chooser: random.Random):
    """C{value} with one of the values inside it (or itself) replaced, dropped or duplicated."""
    if isinstance(value, dict) and value and chooser.randrange(3):
        key = chooser.choice(list(value))
        if chooser.randrange(8) == 0:
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: changed(value[key], events, chooser)}
    if isinstance(value, list) and value and chooser.randrange(3):
        index = chooser.randrange(len(value))
        if chooser.randrange(8) == 0:
            return value[:index] + value[index + 1 :] if chooser.randrange(2) else value + [value[index]]
        return value[:index] + [changed(value[index], events, chooser)] + value[index + 1 :]
    return replacement(value, events, chooser)


def replacement(value, events: list, chooser: random.Random):
    """A value to put where C{value} was: of another JSON type, a near one, or a piece of an event."""
    choices = [
        None, True, 0, -1, 2**63, 1.5, "", "None", "10.0.0.1", "fd00::1", "not an address", "ADDED", "MODIFIED",
        "DELETED", "BOOKMARK", "ERROR", 410, "Pod", "IPv6", "FQDN", "2024-01-01T00:00:00Z", [], {}, [value],
        {"x": value}, str(value), pick(chooser.choice(events), chooser),
    ]
    if isinstance(value, str) and value:
        position = chooser.randrange(len(value))
        choices += [value[:position], value + value, value[:position] + "." + value[position:]]
    if isinstance(value, int) and not isinstance(value, bool):
        choices += [value + 1, -value, value * 65536]
    return chooser.choice(choices)


def pick(value, chooser: random.Random):
    """A value somewhere inside C{value}."""
    while isinstance(value, (dict, list)) and value and chooser.randrange(3):
        value = chooser.choice(list(value.values()) if isinstance(value, dict) else value)
    return value


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input, custom_mutator=mutate)
    atheris.Fuzz()
