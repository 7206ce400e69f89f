"""
What holds the reactor up at half load: a kubernetai daemon under bench/queries.py's
load, with probes inside it, and where its worst moments went.

    python bench/stalls.py [--cache] [--changes N] [--scrape SECONDS] [--relist SECONDS]
                           [--switch-interval MS] [--seconds N]

The daemon (bench/queries.py's Corefile, on CPU 0, with C{prometheus} when
C{--scrape} is given) runs under this file's C{--daemon} mode: a 1 ms LoopingCall
records every turn of the reactor more than GAP_MS late, with the reactor thread's
CPU time, the process's and the reactor thread's run-queue wait over the gap;
C{gc.callbacks} times every collection (generation, reactor-thread CPU); the
suspects are timed per call.  The driver (CPU 1) measures the daemon's peak with
dnsperf, then runs bench/queries.py's paced client at half of it for C{--seconds},
meanwhile changing C{--changes} services a second and scraping C{/metrics}, and
prints what the probes saw during that run.  The probes cost a little: figures are
for attribution, bench/queries.py's are the latency.  C{--relist} has the API server
cut every watch and forget its history every so many seconds, so that the daemon
lists everything again while it serves; C{--switch-interval} keeps the daemon at
that GIL switch interval instead of the one it sets (kubernetai.daemon), to compare.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import random
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from dataplane import ApiServerProcess, free_port
import queries

GAP_MS = 4.0
SWITCH_INTERVAL_VARIABLE = "KUBERNETAI_STALLS_SWITCH_INTERVAL_MS"
SUSPECTS = (
    ("kubernetai.reuse", "KeptReplies", "_admit"),
    ("kubernetai.cache.entries", "Table", "drop_useless"),
    ("kubernetai.plugins.prometheus", "MetricsPage", "render_GET"),
    ("kubernetai.plugins.prometheus", "SlicedPage", "render"),
    ("kubernetai.kubernetes.index", "Store", "publish"),
    ("kubernetai.kubernetes.watch", "json", "loads"),
)


# Inside the daemon


def run_daemon(out: Path, twistd_arguments: list[str]) -> None:
    """twistd with the probes; what they saw written to C{out} as JSON lines when it stops."""
    import importlib
    from twisted.internet import reactor, task

    records: list[tuple] = []
    started: dict = {}

    def collection(phase, info):
        if phase == "start":
            started.update(wall=time.perf_counter(), cpu=time.thread_time())
        else:
            records.append(("gc", time.monotonic(), info["generation"], (time.thread_time() - started["cpu"]) * 1e3,
                            threading.current_thread().name))

    def run_delay() -> float:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as schedstat:
            return int(schedstat.read().split()[1]) / 1e6

    last: list = []

    def turn():
        now = (time.monotonic(), time.thread_time(), time.process_time(), run_delay())
        if last and now[0] - last[0] > GAP_MS / 1e3:
            records.append(("gap", now[0], *((a - b) * 1e3 for a, b in zip(now[:3], last[:3])), now[3] - last[3]))
        last[:] = now

    def timed(owner, name):
        original = getattr(owner, name)

        def call(*args, **kwargs):
            cpu = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent = (time.thread_time() - cpu) * 1e3
                if spent > 0.5:
                    records.append(("call", time.monotonic(), f"{owner.__name__}.{name}", spent,
                                    threading.current_thread().name))

        setattr(owner, name, call)

    for module, owner, name in SUSPECTS:
        found = getattr(importlib.import_module(module), owner, None)
        if hasattr(found, name):  # an older checkout may have no such thing
            timed(found, name)
    gc.callbacks.append(collection)
    reactor.callWhenRunning(lambda: task.LoopingCall(turn).start(0.001))

    def write():
        out.write_text("".join(json.dumps(record) + "\n" for record in records))

    reactor.addSystemEventTrigger("after", "shutdown", write)
    if os.environ.get(SWITCH_INTERVAL_VARIABLE):
        import kubernetai.daemon
        kubernetai.daemon.REACTOR_GIL_WAIT = float(os.environ[SWITCH_INTERVAL_VARIABLE]) / 1e3
    from twisted.scripts.twistd import run
    sys.argv = ["twistd", *twistd_arguments]
    run()


# The driver


def start_daemon(directory: Path, url: str, options, out: Path) -> tuple[queries.Server, int]:
    """The probed daemon on CPU 0, answering; and its metrics port."""
    port, metrics_port = free_port(), free_port()
    corefile = queries.kubernetai_corefile(port, url, options.cache)
    if options.scrape:
        corefile = corefile.replace("    errors\n", f"    errors\n    prometheus 127.0.0.1:{metrics_port}\n")
    path = directory / "Corefile"
    path.write_text(corefile)
    command = [sys.executable, __file__, "--daemon", str(out), "-n", "--pidfile=", "kubernetai", "-c", str(path)]
    if options.switch_interval:
        os.environ[SWITCH_INTERVAL_VARIABLE] = str(options.switch_interval)
    return queries.Server("kubernetai (probed)", command, port, directory / "daemon.log"), metrics_port


def in_background(period: float, action, stop: threading.Event) -> None:
    def loop():
        while not stop.wait(period):
            action()

    threading.Thread(target=loop, daemon=True).start()


def summarise(records: list, since: float, until: float) -> None:
    """Collections, reactor gaps and slow calls seen between C{since} and C{until}."""
    seen = [record for record in records if since <= record[1] <= until]
    print("\ncollections (CPU of the thread that ran them, ms)")
    by_generation = collections.defaultdict(list)
    for _, _, generation, cpu, _ in (r for r in seen if r[0] == "gc"):
        by_generation[generation].append(cpu)
    for generation, spent in sorted(by_generation.items()):
        spent.sort()
        print(f"  generation {generation}: {len(spent):6,}  median {queries.percentile(spent, 0.5):7.2f}"
              f"  p99 {queries.percentile(spent, 0.99):7.2f}  max {spent[-1]:7.2f}  over 5 ms {sum(s > 5 for s in spent)}")
    gaps = [r for r in seen if r[0] == "gap"]
    print(f"\nreactor turns over {GAP_MS:.0f} ms late: {len(gaps):,}, {sum(g[2] for g in gaps):,.0f} ms in all")
    kinds = collections.Counter()
    for _, _, wall, reactor_cpu, process_cpu, waiting in gaps:
        kind = ("reactor busy" if reactor_cpu > 0.6 * wall else
                "other threads" if process_cpu - reactor_cpu > 0.4 * wall else "off the CPU")
        kinds[kind] += 1
    print("  " + ", ".join(f"{kind} {count:,}" for kind, count in kinds.items()))
    print(f"  run-queue wait of the reactor thread in them: {sum(g[5] for g in gaps):,.0f} ms; longest gap "
          f"{max((g[2] for g in gaps), default=0):.1f} ms")
    calls = collections.defaultdict(list)
    for _, _, label, cpu, thread in (r for r in seen if r[0] == "call"):
        calls[(label, thread)].append(cpu)
    print("\nsuspects' calls over 0.5 ms of CPU")
    for (label, thread), spent in sorted(calls.items()):
        print(f"  {label:24} {thread:32} {len(spent):6,}  max {max(spent):7.2f} ms")


def run(options) -> None:
    queries.print_header()
    os.sched_setaffinity(0, {int(queries.LOAD_CPU)})
    rng = random.Random(1)
    cluster_ip, headless = queries.address_records()
    names = queries.query_names([list(cluster_ip), list(headless), queries.nxdomain_names(rng)], rng)
    queries.POPULATION.changes = int(options.changes * (options.seconds + 10))
    with tempfile.TemporaryDirectory(prefix="kubernetai-stalls-") as temporary:
        directory, api = Path(temporary), ApiServerProcess(queries.POPULATION)
        out = directory / "probes.jsonl"
        daemon, metrics_port = start_daemon(directory, api.url, options, out)
        try:
            daemon.wait_answering(*next(iter(cluster_ip.items())))
            query_file = directory / "queries"
            queries.write_query_file(query_file, names)
            peak = queries.measure_throughput(daemon, query_file, 5)["qps"]
            stop, changed, pipe = threading.Event(), iter(range(10**9)), threading.Lock()

            def at_api(action):
                with pipe:
                    action()

            if options.changes:
                in_background(1 / options.changes, lambda: at_api(lambda: api.change(next(changed))), stop)
            if options.relist:
                in_background(options.relist, lambda: at_api(api.relist), stop)
            if options.scrape:
                in_background(options.scrape, lambda: urllib.request.urlopen(
                    f"http://127.0.0.1:{metrics_port}/metrics").read(), stop)
            since = time.monotonic()
            latency = queries.measure_latency(daemon, round(peak / 2), options.seconds, query_file)
            until = time.monotonic()
            stop.set()
        finally:
            daemon.stop()
            api.close()
        print(f"\npeak {peak:,.0f} QPS; at half: p50 {latency['p50']:.0f}, p99 {latency['p99']:.0f}, p99.9 "
              f"{latency['p999']:.0f}, max {latency['max']:.0f} us; {latency['pauses']} client pauses; other "
              f"processes on the daemon's CPU {latency['others_share']:.0%}")
        summarise([json.loads(line) for line in out.read_text().splitlines()], since, until)


def main() -> None:
    if sys.argv[1:2] == ["--daemon"]:
        run_daemon(Path(sys.argv[2]), sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--cache", action="store_true", help="cache 30 in the chain")
    parser.add_argument("--changes", type=float, default=0, help="services changed a second during the run")
    parser.add_argument("--scrape", type=float, default=0, help="seconds between scrapes of /metrics (adds prometheus)")
    parser.add_argument("--relist", type=float, default=0, help="seconds between relists of everything (0: none)")
    parser.add_argument("--switch-interval", type=float, default=0,
                        help="the daemon's GIL switch interval in ms instead of its own")
    parser.add_argument("--seconds", type=int, default=20, help="length of the run at half the peak")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
