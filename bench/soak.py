"""
Soak benchmark: a running daemon's memory under a steady stream of service
changes while a client asks hot names and names never asked before.

    python bench/soak.py [--changes N] [--rate R] [--cache] [--scale F]

The API server child of bench/dataplane.py (C{--serve}) holds its population
(at C{--scale 1}: 10,000 ClusterIP and 1,000 headless services of 100
endpoints); C{twistd -n kubernetai} (one stanza, C{cache 30} with C{--cache})
watches it.  Every change gives a ClusterIP service a new cluster IP; the
client then asks that name until it answers the new address (with C{--cache},
which may answer the old one for its TTL, once), asks the hot names, and one
name never asked before (a random service name, NXDOMAIN; every
tenth change also a headless service's name over EDNS, a large answer).  The
daemon's VmRSS is printed as it goes.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import random
import socket
import string
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from twisted.names import dns

from dataplane import (
    NAMESPACES,
    QUERY_ID,
    TWISTD,
    ZONE,
    ApiServerProcess,
    cluster_ip_service,
    free_port,
    namespace_of,
    print_header,
    service_fqdn,
)

SERVICES = 10_000
HEADLESS = 1_000
ENDPOINTS_PER_SLICE = 100
HOT_NAMES = 20
STARTUP_TIMEOUT = 300.0
ANSWER_TIMEOUT = 30.0
ASK_TIMEOUT = 1.0
ADDITIONAL_COUNT = struct.Struct("!H")
# An OPT record (RFC 6891): root owner, type 41, a 4096-octet buffer, no flags, no options.
OPT_4096 = b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00"
# What "flat" allows: the daemon's VmRSS at the end at most this much above its first reading after warm-up.
FLAT = 0.05


class Client:
    """One UDP socket asking the daemon, one question at a time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(ASK_TIMEOUT)
        self.next_id = 0
        self.asked = 0

    def ask(self, name: str, edns: bool = False) -> dns.Message:
        """The daemon's reply to C{name} A (over EDNS with a 4096-octet buffer when C{edns})."""
        self.next_id = (self.next_id + 1) & 0xFFFF
        message = dns.Message(id=self.next_id, recDes=1)
        message.addQuery(name.rstrip(".").encode("ascii"), dns.A, dns.IN)
        packet = message.toStr()
        if edns:
            packet = packet[:10] + ADDITIONAL_COUNT.pack(1) + packet[12:] + OPT_4096
        self.sock.send(packet)
        self.asked += 1
        while True:
            packet = self.sock.recv(65535)
            if QUERY_ID.unpack_from(packet)[0] == self.next_id:
                reply = dns.Message()
                reply.fromStr(packet)
                return reply

    def until_answers(self, name: str, ip: str) -> None:
        """Ask C{name} until its answer holds C{ip}."""
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while time.monotonic() < deadline:
            try:
                reply = self.ask(name)
            except socket.timeout:
                continue
            if any(record.type == dns.A and record.payload.dottedQuad() == ip for record in reply.answers):
                return
            time.sleep(0.001)
        raise RuntimeError(f"{name} did not answer {ip} within {ANSWER_TIMEOUT:.0f} s")


class Daemon:
    """C{twistd -n kubernetai} on a Corefile of one stanza, in a temporary directory."""

    def __init__(self, directory: Path, url: str, cache: bool) -> None:
        self.port = free_port()
        corefile = directory / "Corefile"
        corefile.write_text("\n".join([
            f".:{self.port} {{", "    bind 127.0.0.1", "    errors", *(["    cache 30"] if cache else []),
            f"    kubernetai {ZONE} {{", f"        endpoint {url}", "    }", "}", ""]))
        self.log_path = directory / "daemon.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen([TWISTD, "-n", "--pidfile=", "kubernetai", "-c", str(corefile)],
                                            cwd=directory, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT)

    def wait_answering(self, client: Client, name: str, ip: str) -> None:
        """Wait until the daemon listens (it does once synced) and answers C{name} with C{ip}."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                client.until_answers(name, ip)
                return
            except (OSError, RuntimeError):
                time.sleep(0.2)
        raise RuntimeError(f"the daemon did not answer within {STARTUP_TIMEOUT:.0f} s:\n{self.log_path.read_text()}")

    def rss_kib(self) -> int:
        with open(f"/proc/{self.process.pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def never_asked(number: int, rng: random.Random) -> str:
    """A service name no service has and no query asked: NXDOMAIN."""
    return service_fqdn(namespace_of(number % NAMESPACES), "cold-" + "".join(rng.choices(string.ascii_lowercase, k=12)))


def hot_names(options) -> list[str]:
    """Names asked after every change: services past the ones the run changes, so that they never change."""
    numbers = range(options.services - options.hot, options.services)
    return [service_fqdn(*cluster_ip_service(number)[:2]) for number in numbers]


def soak(options, server: ApiServerProcess, daemon: Daemon, client: Client) -> list[tuple[int, float, int]]:
    """Make the changes at C{options.rate} a second, each followed by its questions; (changes, seconds,
    VmRSS KiB) at the start and after every C{options.every} changes."""
    rng = random.Random(1)
    hot = hot_names(options)
    changed_range = options.services - options.hot
    started = time.monotonic()
    readings = [(0, 0.0, daemon.rss_kib())]
    print_reading(*readings[0], readings[0][2])
    for number in range(options.changes):
        pause = started + number / options.rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        (namespace, name), ip, _ = server.change(number % changed_range)
        if options.cache:
            client.ask(service_fqdn(namespace, name))
        else:
            client.until_answers(service_fqdn(namespace, name), ip)
        for hot_name in hot:
            client.ask(hot_name)
        client.ask(never_asked(number, rng))
        if number % 10 == 0:
            headless = number // 10 % options.headless
            client.ask(service_fqdn(namespace_of(headless), f"headless-{headless:04d}"), edns=True)
        if (number + 1) % options.every == 0:
            readings.append((number + 1, time.monotonic() - started, daemon.rss_kib()))
            print_reading(*readings[-1], readings[0][2])
    return readings


def print_reading(changes: int, seconds: float, rss_kib: int, first_kib: int) -> None:
    print(f"  {changes:8,} {seconds:9.1f} {rss_kib / 1024:9.1f} {(rss_kib - first_kib) / 1024:+9.1f}", flush=True)


def print_verdict(readings: list[tuple[int, float, int]], asked: int) -> None:
    """Growth over the whole run, after its first reading past the start (the warm-up), and over its
    second half."""
    first, warm, last = readings[0][2], readings[min(1, len(readings) - 1)][2], readings[-1][2]
    middle = readings[len(readings) // 2]
    changes, seconds = readings[-1][0], readings[-1][1]
    print(f"\n{changes:,} changes in {seconds:.0f} s ({changes / seconds:.1f} a second), {asked:,} questions")
    print(f"VmRSS {first / 1024:.1f} MiB once synced, {warm / 1024:.1f} after {readings[1][0]:,} changes, "
          f"{middle[2] / 1024:.1f} after {middle[0]:,}, {last / 1024:.1f} at the end")
    print(f"growth {(last - first) / first:+.1%} over the run, {(last - warm) / warm:+.1%} after the warm-up, "
          f"{(last - middle[2]) / middle[2]:+.1%} over the second half "
          f"({(last - middle[2]) * 1024 / max(1, changes - middle[0]):,.0f} bytes a change): "
          f"{'flat' if last <= warm * (1 + FLAT) else 'NOT flat'} (within {FLAT:.0%} after the warm-up)")


def run(options) -> None:
    print_header()
    population = argparse.Namespace(services=options.services, headless=options.headless,
                                    endpoints_per_slice=options.endpoints_per_slice, changes=options.changes)
    server = ApiServerProcess(population)
    try:
        print(f"loaded    {options.services:,} ClusterIP and {options.headless:,} headless services of "
              f"{options.endpoints_per_slice} endpoints; daemon with {'cache 30' if options.cache else 'no cache'}")
        print(f"soak      {options.changes:,} changes at {options.rate:g} a second, each followed by the changed name "
              f"{'once' if options.cache else 'until it answers'}, {options.hot} hot names, one never-asked name (every tenth change a headless name too)")
        with tempfile.TemporaryDirectory(prefix="kubernetai-soak-") as directory:
            daemon = Daemon(Path(directory), server.url, options.cache)
            try:
                client = Client(daemon.port)
                namespace, name, ip = cluster_ip_service(0)
                daemon.wait_answering(client, service_fqdn(namespace, name), ip)
                print(f"\n  {'changes':>8} {'seconds':>9} {'VmRSS MiB':>9} {'growth':>9}")
                readings = soak(options, server, daemon, client)
                print_verdict(readings, client.asked)
            finally:
                daemon.stop()
    finally:
        server.close()


def parse_options(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--changes", type=int, default=10_000, help="service changes (default 10,000)")
    parser.add_argument("--rate", type=float, default=50.0, help="changes a second at most (default 50)")
    parser.add_argument("--cache", action="store_true", help="the daemon runs cache 30 before its stanza")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="population relative to dataplane.py's default of 11,000 services (default 1)")
    parser.add_argument("--hot", type=int, default=HOT_NAMES, help=f"hot names asked after each change (default {HOT_NAMES})")
    parser.add_argument("--every", type=int, default=500, help="changes between readings of VmRSS (default 500)")
    options = parser.parse_args(argv)
    options.services = max(options.hot + 1, round(SERVICES * options.scale))
    options.headless = max(1, round(HEADLESS * options.scale))
    options.endpoints_per_slice = ENDPOINTS_PER_SLICE
    return options


if __name__ == "__main__":
    run(parse_options())
