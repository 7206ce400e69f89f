"""
Benchmark of C{--workers N} for N = 1, 2, 4: what the API server sees (connections, LIST and
WATCH requests), the memory of every process, the time to ready, how soon a change made on
the API server is answered by every worker, and the queries each worker answers (all of the
daemon's processes on CPU 0, dnsperf on CPU 1).  Prints figures; asserts nothing.

    python bench/workers.py [--services N] [--headless N] [--endpoints-per-slice N] [--changes N] [--workers 1,2,4]

The API server process is bench/dataplane.py's (C{--serve}, same population flags); each N runs
C{twistd -n kubernetai --workers N} on one stanza, with ready on a private HTTP port.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataplane import (  # noqa: E402  (bench/ is not a package)
    DAEMON_START_TIMEOUT,
    TWISTD,
    ZONE,
    ApiServerProcess,
    ask,
    free_port,
    percentile,
    print_header,
    cluster_ip_service,
    service_fqdn,
)
from queries import LOAD_CPU, SERVER_CPU, dnsperf, process_cpu_seconds, write_query_file  # noqa: E402

# Client sockets asked per worker, so that every worker is reached (the kernel picks one per socket).
SOCKETS_PER_WORKER = 8
# After ready, how long the watches have to open before the API server's counts are read.
WATCHES_OPEN_TIMEOUT = 30.0
QPS_SECONDS = 5


def corefile(port: int, http_port: int, url: str) -> str:
    return (f".:{port} {{\n    bind 127.0.0.1\n    ready 127.0.0.1:{http_port}\n"
            f"    kubernetai {ZONE} {{\n        endpoint {url}\n    }}\n}}\n")


def ready(http_port: int) -> dict | None:
    """The daemon's /ready?verbose document if it says 200, else None."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/ready?verbose", timeout=2) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return None


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def watches(counts: dict) -> int:
    return sum(count for key, count in counts.items() if key.startswith("watch:"))


def lists(counts: dict) -> int:
    return sum(count for key, count in counts.items() if key.startswith("list:"))


def answered_by_all(port: int, name: str, ip: str, sockets: int, timeout: float = 30.0) -> float:
    """The monotonic time at which C{sockets} queries in a row, each from its own socket, all answer C{ip}."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all(ip in ask(port, name, timeout=0.5)[1] for _ in range(sockets)):
                return time.monotonic()
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} not answered {ip} by every worker within {timeout:.0f} s")


def measure_queries(port: int, pids: list[int], query_file: Path) -> dict:
    """dnsperf on LOAD_CPU against the daemon, its processes C{pids} moved to SERVER_CPU: QPS and
    the CPU time of each process (the supervisor first when there are workers)."""
    for pid in pids:
        os.sched_setaffinity(pid, {int(SERVER_CPU)})
    before = [process_cpu_seconds(pid) for pid in pids]
    run = dnsperf(port, query_file, QPS_SECONDS)
    return {"qps": run["qps"], "completed": run["completed"], "lost": run["lost"],
            "cpu": [process_cpu_seconds(pid) - spent for pid, spent in zip(pids, before)]}


def measure(server: ApiServerProcess, workers: int, changes: int, first_change: int, query_file: Path) -> dict:
    """One run of C{--workers N}: the API server's counts, memory, time to ready, change-to-every-answer delays."""
    with tempfile.TemporaryDirectory(prefix="kubernetai-workers-") as directory:
        port, http_port = free_port(), free_port()
        path = Path(directory) / "Corefile"
        path.write_text(corefile(port, http_port, server.url))
        before = server.counts()
        started = time.monotonic()
        with open(Path(directory) / "daemon.log", "w") as log:
            daemon = subprocess.Popen([TWISTD, "-n", "--pidfile=", "kubernetai", "-c", str(path), "--workers",
                                       str(workers)], cwd=directory, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT)
        try:
            document = None
            while document is None:
                if time.monotonic() - started > DAEMON_START_TIMEOUT:
                    raise RuntimeError(f"--workers {workers}: not ready in {DAEMON_START_TIMEOUT:.0f} s")
                time.sleep(0.1)
                document = ready(http_port)
            ready_seconds = time.monotonic() - started
            deadline = time.monotonic() + WATCHES_OPEN_TIMEOUT
            while watches(server.counts()) - watches(before) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)
            after = server.counts()
            pids = [worker["pid"] for worker in document.get("workers", ())]
            delays = []
            for number in range(first_change, first_change + changes):
                (namespace, name), ip, made_at = server.change(number)
                answered = answered_by_all(port, service_fqdn(namespace, name), ip, SOCKETS_PER_WORKER * workers)
                delays.append(answered - made_at)
            queries = measure_queries(port, [daemon.pid, *pids], query_file)
            return {
                "queries": queries,
                "lists": lists(after) - lists(before),
                "watches": watches(after) - watches(before),
                "connections": after["connections"] - before["connections"],
                "ready": ready_seconds,
                "supervisor_kib": rss_kib(daemon.pid) if pids else 0,
                "worker_kib": [rss_kib(pid) for pid in pids] or [rss_kib(daemon.pid)],
                "delays": delays,
            }
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)


def total_kib(result: dict) -> int:
    """The VmRSS of every process of one run."""
    return result["supervisor_kib"] + sum(result["worker_kib"])


def report(results: dict[int, dict]) -> None:
    print("\nper --workers N: what the API server saw from start to ready (+1 s), and the processes' VmRSS")
    print(f"  {'N':>2} {'conns':>6} {'LISTs':>6} {'WATCHes':>8} {'ready s':>8} {'supervisor MiB':>15}"
          f" {'per worker MiB':>15} {'total MiB':>10}")
    for workers, result in results.items():
        per_worker = sum(result["worker_kib"]) / len(result["worker_kib"]) / 1024
        total = total_kib(result) / 1024
        print(f"  {workers:>2} {result['connections']:>6} {result['lists']:>6} {result['watches']:>8}"
              f" {result['ready']:>8.2f} {result['supervisor_kib'] / 1024:>15.1f} {per_worker:>15.1f} {total:>10.1f}")
    supervised = sorted(workers for workers in results if workers > 1)
    if len(supervised) > 1:
        first, last = supervised[0], supervised[-1]
        growth = (total_kib(results[last]) - total_kib(results[first])) / 1024 / (last - first)
        print(f"  memory per added worker, from N={first} to N={last}: {growth:.1f} MiB")
    print("\nchange to every worker's answer (one change at a time; "
          f"{SOCKETS_PER_WORKER} sockets per worker must all answer it), ms")
    for workers, result in results.items():
        milliseconds = [delay * 1000 for delay in result["delays"]]
        if milliseconds:
            print(f"  N={workers}: p50 {percentile(milliseconds, 0.5):.1f}  p99 {percentile(milliseconds, 0.99):.1f}"
                  f"  max {max(milliseconds):.1f}  ({len(milliseconds)} changes)")


def report_queries(results: dict[int, dict]) -> None:
    print(f"\nqueries: dnsperf -c 20 -l {QPS_SECONDS} on CPU {LOAD_CPU} over every ClusterIP service's name, "
          f"every process of the daemon on CPU {SERVER_CPU}")
    print(f"  {'N':>2} {'QPS':>8} {'lost':>6} {'QPS per worker':>15} {'supervisor CPU':>15} {'workers CPU':>12}"
          f" {'per worker CPU-s':>17}")
    for workers, result in results.items():
        queries = result["queries"]
        cpu = queries["cpu"]
        supervisor_cpu, worker_cpu = (cpu[0], cpu[1:]) if len(cpu) > 1 else (0.0, cpu)
        busy = sum(worker_cpu)
        print(f"  {workers:>2} {queries['qps']:>8,.0f} {queries['lost']:>6,} {queries['qps'] / workers:>15,.0f}"
              f" {supervisor_cpu / QPS_SECONDS:>15.0%} {busy / QPS_SECONDS:>12.0%}"
              f" {queries['completed'] / busy if busy else 0:>17,.0f}")
    print("  QPS per worker: the daemon's QPS over N (the kernel spreads dnsperf's sockets over the workers);"
          " per worker CPU-s: queries answered per CPU-second the workers spent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--headless", type=int, default=200)
    parser.add_argument("--endpoints-per-slice", type=int, default=100)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--workers", default="1,2,4", help="the worker counts to run, comma-separated")
    options = parser.parse_args()
    print_header()
    server = ApiServerProcess(argparse.Namespace(**{**vars(options), "changes": options.changes * 10}))
    print(f"loaded    {options.services + options.headless:,} services, {options.headless:,} slices of "
          f"{options.endpoints_per_slice} endpoints into {server.url} in {server.load_seconds:.1f} s")
    try:
        results = {}
        with tempfile.TemporaryDirectory(prefix="kubernetai-workers-queries-") as directory:
            query_file = Path(directory) / "queries"
            write_query_file(query_file, [service_fqdn(*cluster_ip_service(number)[:2])
                                          for number in range(options.services)])
            for run, workers in enumerate(int(each) for each in options.workers.split(",")):
                results[workers] = measure(server, workers, options.changes, run * options.changes, query_file)
                print(f"  --workers {workers} measured", flush=True)
        report(results)
        report_queries(results)
    finally:
        server.close()


if __name__ == "__main__":
    main()
