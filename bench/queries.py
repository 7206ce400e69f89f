"""
Benchmark of kubernetai answering queries: its peak rate, with and without
C{cache}, next to Twisted's stock authoritative server (C{twistd dns}) answering
the same names from a zone file; its latency at half its peak; the CPU time
each query costs it and its memory; and names never asked before forwarded
to an upstream that answers at once, next to C{twistd dns} forwarding them.

    python bench/queries.py                  # full run, about 170 s
    python bench/queries.py --quick          # about 70 s
    python bench/queries.py --forward-only   # the forwarded names alone, about 55 s

It needs Linux (/proc), two CPUs, C{taskset} (util-linux) and dnsperf
(C{apt-get install dnsperf}).  The servers run on CPU 0, dnsperf and the
latency client on CPU 1.  The population is that of bench/dataplane.py (its
C{--serve} child, 2,000 ClusterIP and 100 headless services of 10 endpoints);
the stock server's zone file is written from the same helpers.  See
bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import string
import struct
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from twisted.names import dns

from dataplane import (
    NAMESPACES,
    QUERY_ID,
    TWISTD,
    ZONE,
    ApiServerProcess,
    ask,
    cluster_ip_service,
    headless_endpoints,
    free_port,
    namespace_of,
    percentile,
    print_header,
    query_tail,
    service_fqdn,
)

POPULATION = argparse.Namespace(services=2_000, headless=100, endpoints_per_slice=10, changes=0)
TTL = 5
NXDOMAIN_NAMES = 100
QUERY_LINES = 10_000
MIX = (("ClusterIP A", 0.8), ("headless A", 0.1), ("NXDOMAIN", 0.1))
SERVER_CPU = "0"
LOAD_CPU = "1"
DNSPERF_CLIENTS = 20
STARTUP_TIMEOUT = 60.0
LATENCY_DRAIN_SECONDS = 1.0
CLIENT_PAUSE_NS = 1_000_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SO_TIMESTAMPNS = 35  # Linux's value (asm-generic/socket.h); the socket module does not name it
TIMESPEC = struct.Struct("@ll")
TARGETS = (2.5, 1.5)  # kubernetai with cache, then without, over stock twistd dns
COLD_TARGETS = (1.5, 1.5)  # the same on never-asked names
FULL = argparse.Namespace(rounds=2, seconds=10, latency_seconds=10, cold_seconds=5)
QUICK = argparse.Namespace(rounds=1, seconds=4, latency_seconds=3, cold_seconds=2)
COLD_NAMES = 1_000_000
FORWARD_ZONE = "example.org"
FORWARD_ADDRESS = "192.0.2.1"
SETTLE_WINDOW, SETTLE_STEAL, SETTLE_LIMIT = 2.0, 0.005, 60.0  # before each latency run: see settle()
LATENCY_TARGET_US = 5000  # p99.9 of kubernetai, with and without cache, at half its peak
FORWARD_TARGET = 1.0  # kubernetai, with and without cache, over stock twistd dns forwarding never-asked names


# The names both servers answer


def headless_name(number: int) -> str:
    """The C{number}th headless service's name, as bench/dataplane.py's load() gives it."""
    return f"headless-{number:04d}"


def address_records() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The A records of the population, by kind: ClusterIP services and headless services, each name to its addresses."""
    cluster_ip = {}
    for number in range(POPULATION.services):
        namespace, name, ip = cluster_ip_service(number)
        cluster_ip[service_fqdn(namespace, name)] = [ip]
    headless = {}
    for number in range(POPULATION.headless):
        endpoints = headless_endpoints(number, POPULATION.endpoints_per_slice)
        fqdn = service_fqdn(namespace_of(number), headless_name(number))
        headless[fqdn] = [address for endpoint in endpoints for address in endpoint["addresses"]]
    return cluster_ip, headless


def nxdomain_names(rng: random.Random) -> list[str]:
    """Random service names, in the population's namespaces, that no service has."""
    return [service_fqdn(namespace_of(number), "nx-" + "".join(rng.choices(string.ascii_lowercase, k=8)))
            for number in range(NXDOMAIN_NAMES)]


def cold_names(rng: random.Random) -> list[str]:
    """COLD_NAMES names no query asked before, all different: random service names in the population's
    namespaces (NXDOMAIN), as a random-subdomain flood sends them."""
    return [service_fqdn(namespace_of(number % NAMESPACES), "cold-" + "".join(rng.choices(string.ascii_lowercase, k=12)))
            for number in range(COLD_NAMES)]


def query_names(kinds: list[list[str]], rng: random.Random) -> list[str]:
    """QUERY_LINES names drawn from each kind (in MIX's order) in MIX's shares, shuffled."""
    names = []
    for pool, (_, share) in zip(kinds, MIX):
        names += rng.choices(pool, k=round(QUERY_LINES * share))
    rng.shuffle(names)
    return names


def write_query_file(path: Path, names: list[str]) -> None:
    """dnsperf's input: one C{NAME A} a line."""
    path.write_text("".join(f"{name} A\n" for name in names))


def write_zone_file(path: Path, records: dict[str, list[str]]) -> None:
    """A BIND zone file for ZONE with kubernetai's SOA and TTL and C{records}' A records."""
    lines = [f"$TTL {TTL}", f"{ZONE}. IN SOA ns.dns.{ZONE}. hostmaster.{ZONE}. 1 7200 1800 86400 {TTL}",
             f"{ZONE}. IN NS ns.dns.{ZONE}."]
    lines += [f"{name} IN A {ip}" for name, ips in records.items() for ip in ips]
    path.write_text("\n".join(lines) + "\n")


def kubernetai_corefile(port: int, url: str, cache: bool) -> str:
    """The default chain, one directive a line; C{cache 30} or not."""
    return "\n".join([f".:{port} {{", "    bind 127.0.0.1", "    errors", *(["    cache 30"] if cache else []),
                      f"    kubernetai {ZONE} {{", f"        endpoint {url}", "    }", "}", ""])


# The servers


def process_cpu_seconds(pid: int) -> float:
    """User and system time of all a process's threads so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


class Server:
    """A DNS server child pinned to SERVER_CPU, its output in a log file."""

    def __init__(self, label: str, command: list[str], port: int, log_path: Path) -> None:
        self.label, self.port, self.log_path = label, port, log_path
        with open(log_path, "w") as log:
            # taskset execs the command, so the child's PID is the server's.
            self.process = subprocess.Popen(["taskset", "-c", SERVER_CPU, *command], cwd=log_path.parent,
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def wait_answering(self, name: str, addresses: list[str]) -> None:
        """Wait until the server gives C{name} C{addresses} (kubernetai listens once synced)."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                if ask(self.port, name, timeout=0.2) == (dns.OK, addresses):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.label} not answering {name} after {STARTUP_TIMEOUT:.0f} s:\n{self.log_path.read_text()}")

    def cpu_seconds(self) -> float:
        """User and system time of all the server's threads so far."""
        return process_cpu_seconds(self.process.pid)

    def rss_kib(self) -> int:
        """The server's VmRSS now, from /proc/PID/status."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise KeyError("VmRSS")

    def udp_drops(self) -> int:
        """Datagrams the kernel dropped at the server's UDP socket (receive buffer full), from /proc/net/udp."""
        local = f"0100007F:{self.port:04X}"
        with open("/proc/net/udp") as table:
            for line in table:
                fields = line.split()
                if fields[1] == local:
                    return int(fields[-1])
        raise KeyError(local)

    def stop(self) -> None:
        """SIGTERM (twistd's clean shutdown), then SIGKILL after 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_servers(stack: ExitStack, directory: Path, url: str, records: dict[str, list[str]]) -> list[Server]:
    """kubernetai with cache, kubernetai without, and twistd dns on the zone file, all answering."""
    zone_file = directory / "zone"
    write_zone_file(zone_file, records)
    servers = start_three(stack, directory, lambda port, cache: kubernetai_corefile(port, url, cache),
                          ["--bindzone", str(zone_file)])
    name, addresses = next(iter(records.items()))
    for server in servers:
        server.wait_answering(name, addresses)
    return servers


def start_three(stack: ExitStack, directory: Path, corefile_text, stock_options: list[str]) -> list[Server]:
    """kubernetai with C{cache 30} and without (the Corefile C{corefile_text(port, cache)}), then twistd dns
    with C{stock_options}, each on a free port, stopped with C{stack}."""
    servers = []

    def start(label: str, command: list[str], port: int) -> None:
        server = Server(label, command, port, directory / f"server-{port}.log")
        stack.callback(server.stop)
        servers.append(server)

    for label, cache in (("kubernetai, cache 30", True), ("kubernetai, no cache", False)):
        port = free_port()
        corefile = directory / f"Corefile-{port}"
        corefile.write_text(corefile_text(port, cache))
        start(label, [TWISTD, "-n", "--pidfile=", "kubernetai", "-c", str(corefile)], port)
    port = free_port()
    start("twistd dns (stock)", [TWISTD, "-n", "--pidfile=", "dns", *stock_options,
                                 "--port", str(port), "--interface", "127.0.0.1"], port)
    return servers


def check_same_answers(servers: list[Server], records: dict[str, list[str]], missing: list[str]) -> None:
    """Every server gives every name in C{records} its addresses, and NXDOMAIN for every C{missing} name."""
    expected = {**{name: (dns.OK, sorted(ips)) for name, ips in records.items()},
                **{name: (dns.ENAME, []) for name in missing}}
    for server in servers:
        for name, answer in expected.items():
            got = ask(server.port, name)
            if got != answer:
                raise RuntimeError(f"{server.label} answers {name} with {got}, expected {answer}")


# Load


def dnsperf_version() -> str:
    """dnsperf's version, from its usage text."""
    usage = subprocess.run(["dnsperf", "-h"], capture_output=True, text=True)
    found = re.search(r"Version (\S+)", usage.stdout + usage.stderr)
    return found.group(1) if found else "unknown"


def dnsperf(port: int, query_file: Path, seconds: int) -> dict:
    """One unthrottled dnsperf run on LOAD_CPU: its counts, QPS and response codes."""
    command = ["taskset", "-c", LOAD_CPU, "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(query_file),
               "-l", str(seconds), "-c", str(DNSPERF_CLIENTS)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout

    def figure(label: str) -> str:
        return re.search(rf"{label}:\s+(.*)", output).group(1).strip()

    return {"sent": int(figure("Queries sent").split()[0]), "completed": int(figure("Queries completed").split()[0]),
            "lost": int(figure("Queries lost").split()[0]), "qps": float(figure("Queries per second")),
            "codes": figure("Response codes")}


def cpu_ticks() -> dict[str, list[int]]:
    """Per CPU of the benchmark (C{cpuN}), its first eight counts of /proc/stat: user, nice, system,
    idle, iowait, irq, softirq and steal ticks."""
    ticks = {}
    with open("/proc/stat") as stat:
        for line in stat:
            name, *fields = line.split()
            if name in (f"cpu{SERVER_CPU}", f"cpu{LOAD_CPU}"):
                ticks[name] = list(map(int, fields[:8]))
    return ticks


def server_cpu_busy_seconds() -> float:
    """Time SERVER_CPU has not been idle (user, nice, system, irq and softirq time)."""
    user, nice, system, _, _, irq, softirq, _ = cpu_ticks()[f"cpu{SERVER_CPU}"]
    return (user + nice + system + irq + softirq) / CLOCK_TICKS


def stolen_share(before: dict[str, list[int]], after: dict[str, list[int]]) -> float:
    """The largest share of time the host took (steal) from either CPU of the benchmark between two
    L{cpu_ticks} readings."""
    return max((after[cpu][7] - before[cpu][7]) / max(1, sum(after[cpu]) - sum(before[cpu])) for cpu in before)


def with_cpu_use(server: Server, action):
    """C{action()}'s result, the server's CPU seconds during it, and other processes' on the server's CPU."""
    cpu_before, busy_before = server.cpu_seconds(), server_cpu_busy_seconds()
    result = action()
    cpu = server.cpu_seconds() - cpu_before
    return result, cpu, server_cpu_busy_seconds() - busy_before - cpu


def measure_throughput(server: Server, query_file: Path, seconds: int) -> dict:
    """A dnsperf run against C{server}, with the CPU time the server, and other processes on its CPU, spent."""
    run, cpu, others = with_cpu_use(server, lambda: dnsperf(server.port, query_file, seconds))
    return {**run, "cpu_seconds": cpu, "others_seconds": others}


def settle() -> float:
    """Wait, up to SETTLE_LIMIT seconds, for a SETTLE_WINDOW in which the host took (steal) under
    SETTLE_STEAL of either CPU: after the unthrottled runs the host takes more for a while, and the
    first server measured would pay for the load the others made.  The seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < SETTLE_LIMIT:
        before = cpu_ticks()
        time.sleep(SETTLE_WINDOW)
        if stolen_share(before, cpu_ticks()) < SETTLE_STEAL:
            break
    return time.monotonic() - started


def measure_latency(server: Server, rate: int, seconds: int, query_file: Path) -> dict:
    """The paced client's figures for C{server} at C{rate} queries a second, run as a child on LOAD_CPU
    once the host has settled."""
    waited = settle()
    command = ["taskset", "-c", LOAD_CPU, sys.executable, __file__, "--client", str(server.port), str(rate),
               str(seconds), str(query_file)]
    drops_before, started, ticks_before = server.udp_drops(), time.monotonic(), cpu_ticks()
    result, _, others = with_cpu_use(
        server, lambda: json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout))
    return {**result, "server_drops": server.udp_drops() - drops_before,
            "others_share": others / (time.monotonic() - started),
            "stolen_share": stolen_share(ticks_before, cpu_ticks()), "waited": waited}


# The latency client (its own process)


def paced_client(port: int, rate: int, seconds: int, query_file: Path) -> dict:
    """Send the queries of C{query_file} in turn from one UDP socket, each at its time on a fixed
    schedule of C{rate} a second (shifted on after each pause of this process longer than
    CLIENT_PAUSE_NS), and time each reply from the moment before its send to the kernel's receive
    timestamp; percentiles in microseconds, lost queries, and how late sends were."""
    tails = [query_tail(line.split()[0]) for line in query_file.read_text().splitlines()]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    pending: dict[int, tuple[int, bytes]] = {}
    latencies: list[int] = []
    total, interval = rate * seconds, 1e9 / rate
    # Reference counting frees what the loop drops; a collection of the whole heap would hold up sends.
    gc.disable()
    overwritten = sent = max_lag = pauses = 0
    start = time.time_ns()
    while sent < total:
        due = start + int(sent * interval)
        now = time.time_ns()
        if now < due:
            select.select([sock], [], [], (due - now) / 1e9)
            collect_replies(sock, pending, latencies)
            continue
        max_lag = max(max_lag, now - due)
        if now - due > CLIENT_PAUSE_NS:
            # This process was held up: go on from now rather than send the backlog as a burst the
            # server never saw from a client at this rate.
            start += now - due
            pauses += 1
        query_id = sent & 0xFFFF
        overwritten += query_id in pending
        tail = tails[sent % len(tails)]
        pending[query_id] = (time.time_ns(), tail[10:])
        sock.send(QUERY_ID.pack(query_id) + tail)
        sent += 1
    send_seconds = (time.time_ns() - start) / 1e9
    drain_until = time.monotonic() + LATENCY_DRAIN_SECONDS
    while pending and time.monotonic() < drain_until:
        select.select([sock], [], [], 0.05)
        collect_replies(sock, pending, latencies)
    micros = [latency / 1000 for latency in latencies]
    return {"rate": rate, "sent": sent, "send_rate": sent / send_seconds, "max_lag_us": max_lag / 1000, "pauses": pauses,
            "answered": len(latencies), "lost": overwritten + len(pending),
            **{name: percentile(micros, fraction) for name, fraction in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))},
            "max": max(micros)}


def collect_replies(sock: socket.socket, pending: dict[int, tuple[int, bytes]], latencies: list[int]) -> None:
    """Take every reply waiting on C{sock} that matches a pending query's ID and question."""
    while True:
        try:
            reply, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(TIMESPEC.size))
        except BlockingIOError:
            return
        query_id = QUERY_ID.unpack_from(reply)[0]
        sent_at, question = pending.get(query_id, (0, None))
        if question is None or reply[12:12 + len(question)] != question:
            continue
        del pending[query_id]
        seconds, nanoseconds = TIMESPEC.unpack(ancillary[0][2])
        latencies.append(seconds * 1_000_000_000 + nanoseconds - sent_at)


# Report


def print_setup(server: ApiServerProcess, servers: list[Server], kinds: list, names: list[str]) -> None:
    """dnsperf's version, the machine's load, the population, the queries, and where each server runs."""
    with open("/proc/loadavg") as loadavg:
        load = " ".join(loadavg.read().split()[:3])
    print(f"dnsperf   {dnsperf_version()}")
    print(f"load      {load} (1, 5, 15 min averages before the measurements: other work shares these CPUs)")
    print(f"population  {POPULATION.services:,} ClusterIP services and {POPULATION.headless} headless services of "
          f"{POPULATION.endpoints_per_slice} endpoints in {NAMESPACES} namespaces, API server process at {server.url}")
    shares = ", ".join(f"{share:.0%} {label} ({len(pool):,} names)" for pool, (label, share) in zip(kinds, MIX))
    print(f"queries     {len(names):,} lines, {len(set(names)):,} distinct names: {shares}")
    print("            every server answered every ClusterIP and headless name with its addresses and every"
          " NXDOMAIN name with NXDOMAIN")
    for each in servers:
        print(f"server      {each.label:22} 127.0.0.1:{each.port} on CPU {SERVER_CPU}, PID {each.process.pid}")


def print_throughput(servers: list[Server], runs: dict[str, list[dict]],
                     settings) -> tuple[dict[str, float], dict[str, float]]:
    """Each server's QPS per round and mean, queries lost and CPU use; mean QPS and queries per CPU-second by label."""
    print(f"\nthroughput: dnsperf -c {DNSPERF_CLIENTS} -l {settings.seconds} on CPU {LOAD_CPU}, unthrottled "
          f"(dnsperf's default of at most 100 queries outstanding), {settings.rounds} round(s), servers in turn")
    return print_rounds(servers, runs, settings.seconds)


def print_rounds(servers: list[Server], runs: dict[str, list[dict]],
                 seconds: int) -> tuple[dict[str, float], dict[str, float]]:
    """The table of each server's rounds of C{seconds}; mean QPS and queries per CPU-second by label."""
    rounds = "".join(f"{f'round {number + 1}':>10}" for number in range(len(runs[servers[0].label])))
    print(f"  {'':22}{rounds}{'mean QPS':>10}{'lost':>9}{'CPU/query':>11}{'CPU busy':>10}{'per CPU-s':>11}"
          f"{'others':>8}")
    means, per_cpu_second = {}, {}
    for server in servers:
        server_runs = runs[server.label]
        means[server.label] = sum(run["qps"] for run in server_runs) / len(server_runs)
        completed = sum(run["completed"] for run in server_runs)
        cpu = sum(run["cpu_seconds"] for run in server_runs)
        per_cpu_second[server.label] = completed / cpu
        per_round = "".join(f"{run['qps']:10,.0f}" for run in server_runs)
        length = seconds * len(server_runs)
        others = sum(run["others_seconds"] for run in server_runs)
        print(f"  {server.label:22}{per_round}{means[server.label]:10,.0f}"
              f"{sum(run['lost'] for run in server_runs):9,}{cpu / completed * 1e6:8.1f} us"
              f"{cpu / length:10.0%}{per_cpu_second[server.label]:11,.0f}{others / length:8.0%}")
    for server in servers:
        print(f"  {server.label:22}answers (last round): {runs[server.label][-1]['codes']}")
    return means, per_cpu_second


def print_cold(results: list[tuple[Server, dict]], seconds: int) -> None:
    """Each server's QPS and CPU per query on names never asked before."""
    print(f"\nnever-asked names: dnsperf -c {DNSPERF_CLIENTS} -l {seconds} on CPU {LOAD_CPU}, unthrottled, over "
          f"{COLD_NAMES:,} different names none asked before (NXDOMAIN), servers in turn")
    print(f"  {'':22}{'QPS':>10}{'lost':>9}{'CPU/query':>11}{'CPU busy':>10}{'others':>8}")
    for server, run in results:
        repeated = "  (names came round again: too few)" if run["sent"] > COLD_NAMES else ""
        print(f"  {server.label:22}{run['qps']:10,.0f}{run['lost']:9,}{run['cpu_seconds'] / run['completed'] * 1e6:8.1f} us"
              f"{run['cpu_seconds'] / seconds:10.0%}{run['others_seconds'] / seconds:8.0%}{repeated}")
    print_ratios({server.label: run["qps"] for server, run in results},
                 {server.label: run["completed"] / run["cpu_seconds"] for server, run in results},
                 [server for server, _ in results], COLD_TARGETS)


def print_ratios(means: dict[str, float], per_cpu_second: dict[str, float], servers: list[Server],
                 targets=TARGETS) -> None:
    """kubernetai's mean QPS over stock's against the targets; and the same ratio of queries per CPU-second."""
    stock = servers[2].label
    for server, target in zip(servers, targets):
        ratio = means[server.label] / means[stock]
        verdict = "met" if ratio >= target else f"missed by {target - ratio:.2f}x ({1 - ratio / target:.0%} short)"
        print(f"  {server.label} / stock: {ratio:.2f}x QPS, target >= {target}x: {verdict};"
              f" {per_cpu_second[server.label] / per_cpu_second[stock]:.2f}x queries per CPU-second")


def print_latency(results: list[tuple[Server, dict]], seconds: int) -> None:
    """The paced client's figures for each server."""
    print(f"\nlatency at half each server's mean QPS: {seconds} s of paced sends from one UDP socket on CPU "
          f"{LOAD_CPU} (bench/queries.py --client), send time to kernel receive timestamp, microseconds")
    print(f"  {'':22}{'rate':>8}{'achieved':>10}{'pauses':>8}{'max late':>10}{'sent':>9}{'lost':>8}{'dropped':>9}"
          f"{'p50':>7}{'p99':>7}{'p99.9':>7}{'max':>7}{'others':>8}{'steal':>7}{'waited':>8}")
    for server, result in results:
        print(f"  {server.label:22}{result['rate']:8,}{result['send_rate']:10,.0f}{result['pauses']:8,}"
              f"{result['max_lag_us']:7,.0f} us{result['sent']:9,}{result['lost']:8,}{result['server_drops']:9,}"
              f"{result['p50']:7.0f}{result['p99']:7.0f}{result['p999']:7.0f}{result['max']:7.0f}"
              f"{result['others_share']:8.0%}{result['stolen_share']:7.1%}{result['waited']:7.0f}s")
    for server, result in results[:2]:
        verdict = "met" if result["p999"] < LATENCY_TARGET_US and not result["lost"] else "not met"
        print(f"  {server.label}: p99.9 {result['p999'] / 1000:.1f} ms, target < {LATENCY_TARGET_US / 1000:.0f} ms "
              f"with nothing lost: {verdict}")
    print("  steal: the largest share of either benchmark CPU's time its host took during the run (/proc/stat);"
          " the host's pauses delay every server alike")
    print(f"  waited: idle before the run until the host took under {SETTLE_STEAL:.1%} of {SETTLE_WINDOW:.0f} s"
          f" (at most {SETTLE_LIMIT:.0f} s)")


def print_memory(servers: list[Server]) -> None:
    """Each server's VmRSS now."""
    print("\nmemory after the run, VmRSS of each server")
    for server in servers:
        print(f"  {server.label:22}{server.rss_kib() / 1024:8.1f} MiB")


def run(settings, forward_only: bool = False) -> None:
    """Start the API server and the three servers, measure, print, and stop every child however it ends;
    then the forwarding servers (L{measure_forwarding}), alone with C{forward_only}."""
    if shutil.which("dnsperf") is None:
        sys.exit("dnsperf not found: apt-get install dnsperf")
    if not {int(SERVER_CPU), int(LOAD_CPU)} <= os.sched_getaffinity(0):
        sys.exit(f"needs CPUs {SERVER_CPU} and {LOAD_CPU}")
    print_header()
    # This process and the children taskset does not place (the API server process) stay off the servers' CPU.
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    rng = random.Random(1)
    cluster_ip, headless = address_records()
    records = {**cluster_ip, **headless}
    kinds = [list(cluster_ip), list(headless), nxdomain_names(rng)]
    names = query_names(kinds, rng)
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kubernetai-queries-")))
        api = ApiServerProcess(POPULATION)
        stack.callback(api.close)
        if forward_only:
            return measure_forwarding(stack, directory, api.url, rng, settings)
        servers = start_servers(stack, directory, api.url, records)
        check_same_answers(servers, records, kinds[2])
        print_setup(api, servers, kinds, names)
        query_file = directory / "queries"
        write_query_file(query_file, names)
        sys.stdout.flush()
        runs = {server.label: [] for server in servers}
        for _ in range(settings.rounds):
            for server in servers:
                runs[server.label].append(measure_throughput(server, query_file, settings.seconds))
        means, per_cpu_second = print_throughput(servers, runs, settings)
        print_ratios(means, per_cpu_second, servers)
        sys.stdout.flush()
        latencies = [(server, measure_latency(server, round(means[server.label] / 2), settings.latency_seconds,
                                              query_file)) for server in servers]
        print_latency(latencies, settings.latency_seconds)
        print_memory(servers)
        cold_file = directory / "cold-queries"
        write_query_file(cold_file, cold_names(rng))
        print_cold([(server, measure_throughput(server, cold_file, settings.cold_seconds)) for server in servers],
                   settings.cold_seconds)
        measure_forwarding(stack, directory, api.url, rng, settings)


# Forwarding names never asked before


def forward_names(rng: random.Random) -> list[str]:
    """COLD_NAMES different names outside the cluster's zone, none asked before, for C{forward}."""
    return [f"fwd-{''.join(rng.choices(string.ascii_lowercase, k=12))}.{FORWARD_ZONE}" for _ in range(COLD_NAMES)]


def forwarding_corefile(port: int, url: str, upstream: str, cache: bool) -> str:
    """A stanza that does not hold the names (it falls through), then C{forward . UPSTREAM}; C{cache 30} or not."""
    return "\n".join([f".:{port} {{", "    bind 127.0.0.1", "    errors", *(["    cache 30"] if cache else []),
                      f"    kubernetai {ZONE} {{", f"        endpoint {url}", "        fallthrough", "    }",
                      f"    forward . {upstream}:53", "}", ""])


def upstream_answer(query: bytes) -> bytes | None:
    """C{query} answered: QR set, its question kept, one A record FORWARD_ADDRESS (TTL 30) for the
    question's name, nothing else; None for a packet that is not a one-question query."""
    if len(query) < 12 or query[2] & 0x80 or query[4:6] != b"\x00\x01":
        return None
    end = 12
    while end < len(query) and query[end]:
        end += 1 + query[end]
    end += 5
    if end > len(query):
        return None
    answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x1e\x00\x04" + socket.inet_aton(FORWARD_ADDRESS)
    return (query[:2] + bytes([query[2] | 0x80, 0x80]) + b"\x00\x01\x00\x01\x00\x00\x00\x00"
            + query[12:end] + answer)


def run_upstream(host: str) -> None:
    """The upstream (its own process, on LOAD_CPU): answer every UDP query on C{host}:53 at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((host, 53))
    print("ready", flush=True)
    recvfrom, sendto = sock.recvfrom, sock.sendto
    while True:
        query, client = recvfrom(4096)
        answer = upstream_answer(query)
        if answer is not None:
            sendto(answer, client)


def start_upstream(stack: ExitStack) -> str:
    """The upstream child on a loopback address of its own, port 53 (all Twisted's stock resolver takes
    from resolv.conf); its address once it listens."""
    host = f"127.{random.randrange(1, 255)}.{random.randrange(1, 255)}.{random.randrange(1, 255)}"
    process = subprocess.Popen(["taskset", "-c", LOAD_CPU, sys.executable, __file__, "--upstream", host],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)

    def stop() -> None:
        process.kill()
        process.wait()

    stack.callback(stop)
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the upstream on {host}:53 did not start")
    return host


def start_forwarding_servers(stack: ExitStack, directory: Path, url: str, upstream: str) -> list[Server]:
    """kubernetai with cache and without, forwarding through a stanza that falls through, and twistd dns
    forwarding (C{--resolv-conf}, no C{--cache}), all to C{upstream} and all answering."""
    resolv_conf = directory / "resolv.conf"
    resolv_conf.write_text(f"nameserver {upstream}\n")
    servers = start_three(stack, directory, lambda port, cache: forwarding_corefile(port, url, upstream, cache),
                          ["--resolv-conf", str(resolv_conf)])
    for server in servers:
        server.wait_answering(f"ready.{FORWARD_ZONE}", [FORWARD_ADDRESS])
    return servers


def measure_forwarding(stack: ExitStack, directory: Path, url: str, rng: random.Random, settings) -> None:
    """The forwarding servers on names never asked before: each round a fresh set of names, servers in turn."""
    upstream = start_upstream(stack)
    servers = start_forwarding_servers(stack, directory, url, upstream)
    runs = {server.label: [] for server in servers}
    for number in range(settings.rounds):
        names_file = directory / f"forward-queries-{number}"
        write_query_file(names_file, forward_names(rng))
        for server in servers:
            runs[server.label].append(measure_throughput(server, names_file, settings.cold_seconds))
    print_forwarding(servers, runs, settings, upstream)


def print_forwarding(servers: list[Server], runs: dict[str, list[dict]], settings, upstream: str) -> None:
    """Each forwarding server's QPS per round, CPU per query and ratios to stock, against FORWARD_TARGET."""
    print(f"\nforwarded never-asked names: dnsperf -c {DNSPERF_CLIENTS} -l {settings.cold_seconds} on CPU {LOAD_CPU}, "
          f"unthrottled, {settings.rounds} round(s) of {COLD_NAMES:,} new names in *.{FORWARD_ZONE}, servers in turn; "
          f"the upstream answers at once from {upstream}:53 on CPU {LOAD_CPU}")
    means, per_cpu_second = print_rounds(servers, runs, settings.cold_seconds)
    stock = servers[-1].label
    for server in servers[:-1]:
        ratio = means[server.label] / means[stock]
        verdict = "met" if ratio >= FORWARD_TARGET else f"missed ({1 - ratio / FORWARD_TARGET:.0%} short)"
        print(f"  {server.label} / stock: {ratio:.2f}x QPS, target >= {FORWARD_TARGET}x: {verdict};"
              f" {per_cpu_second[server.label] / per_cpu_second[stock]:.2f}x queries per CPU-second")


def parse_options(argv=None):
    """The command line: --quick, --forward-only; --client is for the latency child, --upstream for the upstream."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of shorter runs (about 70 s)")
    parser.add_argument("--forward-only", action="store_true", help="only the forwarded never-asked names")
    parser.add_argument("--client", nargs=4, metavar=("PORT", "RATE", "SECONDS", "QUERYFILE"), help=argparse.SUPPRESS)
    parser.add_argument("--upstream", metavar="HOST", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> None:
    options = parse_options()
    if options.client:
        port, rate, seconds, query_file = options.client
        print(json.dumps(paced_client(int(port), int(rate), int(seconds), Path(query_file))))
        return
    if options.upstream:
        run_upstream(options.upstream)
        return
    # A plain kill stops the run the way Ctrl-C does: through the clean-up of every child.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    started = time.monotonic()
    try:
        run(QUICK if options.quick else FULL, options.forward_only)
    except KeyboardInterrupt:
        sys.exit("interrupted; every child stopped")
    print(f"\nrun time  {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
