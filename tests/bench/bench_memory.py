"""Sealer and validator memory as the chain grows (issue 4: RSS after 1 M events ≤ 1.2 x RSS
after 100 k).

Method: `careledger up` as real processes (as tests/e2e does). Pre-signed events
(publisher-demo) are produced in chunks of CHUNK by one producer; after each chunk the bench
waits until all 3 validators report a final block covering it, so the system is measured
settled, not mid-backlog. VmRSS and VmHWM (peak) of the sealer and of each validator are read
at a tenth of the total (100 k) and at the total (1 M; 50 k in a `--quick` run, or
CARELEDGER_BENCH_MEMORY_EVENTS), and `rss_growth_<process>` is their ratio (target <= 1.2).
The sealer's verify workers (child processes, ADR 0010) are measured too: their VmRSS summed
as `rss_mib_at_<mark>_sealer_children` (pages they share count once per worker: an upper
bound) and `rss_growth_sealer_children`.
Signing happens chunk by chunk, before each chunk's produce, so the bench's own memory stays
small.

Takes about 10-13 minutes at 1,400-2,000 events/s on the 2-core machine: the longest part of
`make bench`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer

from careledger.topology import BROKER_PORT, default_services
from shared.kafka import KafkaSettings
from shared.keystore import read_key_file
from tests.bench.bench_pipeline import (
    Validators,
    descendants,
    produce_all,
    service_pids,
    signed_events,
)
from tests.bench.calibrate import BenchRun
from tests.e2e.conftest import free_offset, start_system

TOTAL = 1_000_000
QUICK_TOTAL = 50_000
CHUNK = 20_000
_WATCHED = ("sealer", "validator-1", "validator-2", "validator-3")


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


def children_rss_kib(pid: int) -> int:
    """VmRSS summed over the live processes below `pid` (the sealer's verify workers): an
    upper bound, as pages they share with each other count once per process."""
    total = 0
    for child in descendants(pid):
        try:
            total += memory_kib(child).get("VmRSS", 0)
        except OSError:
            continue
    return total


def main(run: BenchRun | None = None) -> dict[str, object]:
    total = int(os.environ.get("CARELEDGER_BENCH_MEMORY_EVENTS", "0")) or (
        QUICK_TOTAL if run is not None and run.quick else TOTAL
    )
    first_mark = total // 10
    results: dict[str, object] = {"events_total": total, "events_first_mark": first_mark}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as directory:
        work = Path(directory)
        offset = free_offset()
        system = start_system(work / "data", work / "up.log", offset)
        try:
            system.wait_for_output("all services ready", timeout=120)
            specs = default_services(port_offset=offset)
            validators = Validators([s.url() for s in specs if s.name.startswith("validator-")])
            ports = {s.name: s.port for s in specs if s.name in _WATCHED}
            pids = service_pids(system.process.pid, ports)
            key = read_key_file(work / "data" / "keys" / "publisher-demo.json")
            kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{BROKER_PORT + offset}")
            producer = Producer(kafka.producer_config())
            base = validators.wait_idle(timeout=60)
            results |= {
                f"rss_mib_at_start_{n}": _mib(memory_kib(p)["VmRSS"]) for n, p in pids.items()
            }
            sent = 0
            started = time.perf_counter()
            marks = {first_mark: "first_mark", total: "total"}
            while sent < total:
                size = min(CHUNK, total - sent, *(m - sent for m in marks if m > sent))
                produce_all(producer, signed_events(key, size, f"memory-{sent}"))
                producer.flush(120)
                sent += size
                validators.wait_all_final(base + sent, timeout=600)
                if sent in marks:
                    label = marks[sent]
                    for name, pid in sorted(pids.items()):
                        memory = memory_kib(pid)
                        results[f"rss_mib_at_{label}_{name}"] = _mib(memory["VmRSS"])
                        results[f"peak_rss_mib_at_{label}_{name}"] = _mib(memory["VmHWM"])
                        children = children_rss_kib(pid)
                        if children:
                            results[f"rss_mib_at_{label}_{name}_children"] = _mib(children)
            results["final_events_per_s_overall"] = round(total / (time.perf_counter() - started))
        finally:
            if system.process.poll() is None:
                system.process.send_signal(signal.SIGINT)
                try:
                    system.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    system.process.kill()
    for name in _WATCHED:
        first = results.get(f"rss_mib_at_first_mark_{name}")
        last = results.get(f"rss_mib_at_total_{name}")
        first_below = results.get(f"rss_mib_at_first_mark_{name}_children")
        last_below = results.get(f"rss_mib_at_total_{name}_children")
        if isinstance(first_below, float) and isinstance(last_below, float) and first_below:
            results[f"rss_growth_{name}_children"] = round(last_below / first_below, 3)
        if isinstance(first, float) and isinstance(last, float) and first:
            results[f"rss_growth_{name}"] = round(last / first, 3)
    return results


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)
