"""Raw broker passthrough vs. the full pipeline (issue 4 "Performance"), side by side in one run.

Method (2-core machine, embedded broker, everything on this host):

1. Raw passthrough: a standalone embedded broker (nothing else running) with `clinical.events`
   (3 partitions, as `careledger up` creates it). N_RAW pre-signed events (publisher-demo key,
   `complete_event`) are produced by one `Producer(KafkaSettings.producer_config())`,
   value = `encode_event(event)`, key = `kafka_key(event)`, then consumed back with `assign()`
   from the beginning of every partition. events/s = N_RAW / (first produce → last consumed).
2. Full pipeline: `careledger up --only sealer,validator-1,validator-2,validator-3` (the issue's
   pipeline: embedded broker, sealer, 3 validators) as real processes (as tests/e2e does), idle
   until validator-1's
   final tree size equals its head tree size. Throughput: N_PIPELINE pre-signed events produced
   as fast as one producer can; events/s = N_PIPELINE / (first produce → the moment all 3
   validators report a final block (`/v1/head` `final_height`, then that block's `tree_size`)
   covering base + N_PIPELINE leaves). Heads are polled every 50 ms.
   The rate this gives is the burst rate B: the pipeline draining a backlog in full blocks.
   Offered-load sweep: then SWEEP_FRACTIONS (25, 37.5, 50, 75, 100 %) of B are offered in
   turn for SWEEP_SECONDS each, the system settled between points (produce() on a fixed
   schedule; the publish time is the produce() call; the first event of each point warms its
   producer up and is not timed). A poller asks every validator's `/v1/head` every 20 ms and
   records, per block height, the first time any validator reported it (or a later block) as
   final. Afterwards each of those blocks is fetched and its events mapped back by
   (source, id), so finality time per event = first time its block was seen final; latency =
   that minus its publish time. Resolution ≈ the poll interval plus one HTTP round trip.
   Achieved final events/s of a point = the rate at which finality advanced: its events final
   after its first final block ÷ (that block → its last block seen final).
   Sustainable rate S = the highest point the pipeline kept up with (`kept_up`: finality
   advanced at >= 90 % of the offered rate, and the p50 of the point's last second is within
   1.5 x its first second's, give or take one poll: no lag building up). A steady load cuts
   smaller blocks than a backlog does, so S is below B. The latency is measured at 50 % of S
   (one more point if no sweep point is at that rate).
   That point is the reported latency (`latency_*` keys); every point goes to `sweep`
   and to the run's plot. To show where the time goes, the reported point's events are also timed
   to their block's `sealed_at` (sealer's wall clock, same host) and to the first time any
   validator had that block as its verified head; p50 of the first and last second's events
   shows whether a lag builds up.
   Signing is done before timing starts (it is the publisher's cost, not the ledger's).
   Ceiling: 4 Ed25519 checks per event (sealer and 3 validators) on `cores` =
   len(os.sched_getaffinity(0)) cores bound the box at cores x 1e6 / (4 x verify_us) events/s;
   `pipeline_over_ceiling` is B divided by it.
   Then the same throughput phase once more with every service of `careledger up` (keys
   `system_*`): identity, records and billing follow ledger.blocks (billing bills the
   consultations out of the blocks), all on the same 2 cores.
3. RSS: VmRSS of the sealer and of each validator (children of `up`, found by
   `CARELEDGER_PORT=<port>` in their environment) after the throughput phase and after the
   offered-load sweep.
4. CPU: user + system seconds of the sealer, each validator and the broker over the
   throughput phase, each with its live child processes (the sealer's verify workers and
   their forkserver, also shown apart as `cpu_us_per_event_sealer_children`), divided by its
   events: µs of CPU per event per process. On 2 cores the
   sum bounds the throughput (2 s of CPU per second): `pipeline_cpu_bound_events_per_s` is
   that bound, and `pipeline_share_of_cores` the share of the cores these processes used
   during the phase (the rest went to other work on the machine, or to waiting).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Final, cast

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from careledger.broker import EmbeddedBroker, free_port
from careledger.client import complete_event
from careledger.topology import BROKER_PORT, default_services
from shared.crypto import SigningKey
from shared.envelope import CONTENT_TYPE, CONTENT_TYPE_HEADER, encode_event, kafka_key
from shared.kafka import KafkaSettings
from shared.kafka.admin import ensure_topics
from shared.keystore import read_key_file
from shared.topics import TopicSpec
from tests.bench.calibrate import BenchRun
from tests.e2e.conftest import RunningSystem, free_offset, start_system

N_RAW = 20_000
N_PIPELINE = 10_000
#: Offered loads, as fractions of the burst rate. The highest one the pipeline keeps up with
#: (`kept_up`) is the sustainable rate; the latency target is at half of it.
SWEEP_FRACTIONS = (0.25, 0.375, 0.5, 0.75, 1.0)
REPORTED_FRACTION = 0.5
#: A point is kept up with when finality advances at this share of the offered rate or more ...
KEPT_UP_RATE = 0.9
#: ... and the last second's p50 latency is at most this many times the first second's.
KEPT_UP_LAG = 1.5
#: The head poll's interval: latencies are known to about this.
POLL_MS = 20
SWEEP_SECONDS = 8
#: Signature checks per event on the one box: the sealer's and each of 3 validators'.
CHECKS_PER_EVENT = 4
TOPIC = "clinical.events"
HEADERS = [(CONTENT_TYPE_HEADER, CONTENT_TYPE.encode())]


def signed_events(key: SigningKey, count: int, tag: str) -> list[dict[str, Any]]:
    return [
        complete_event(
            {
                # Not a consultation: the pipeline bench measures the ledger, not billing.
                "type": "org.careledger.clinical.note.signed.v1",
                "subject": f"enc-{n % 97}",
                "data": {"encounter": f"enc-{n % 97}", "n": n, "run": tag},
            },
            key=key,
            default_source="https://videoconsult.example/app",
        )
        for n in range(count)
    ]


def produce_all(producer: Producer, events: list[dict[str, Any]]) -> None:
    for event in events:
        value, key = encode_event(event), kafka_key(event).encode()
        while True:
            try:
                producer.produce(TOPIC, value=value, key=key, headers=HEADERS)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)


def raw_passthrough(events: list[dict[str, Any]], kafka_log: Path) -> dict[str, object]:
    with kafka_log.open("ab") as log, EmbeddedBroker(port=free_port(), log=log) as broker:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        ensure_topics(kafka, [TopicSpec(TOPIC, 3)])
        producer = Producer(kafka.producer_config())
        consumer = Consumer(kafka.consumer_config("bench-raw"))
        consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(3)])
        started = time.perf_counter()
        produce_all(producer, events)
        producer.flush(60)
        produced = time.perf_counter()
        received = 0
        deadline = time.monotonic() + 120
        while received < len(events) and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is None:
                    received += 1
        finished = time.perf_counter()
        consumer.close()
    return {
        "raw_events": len(events),
        "raw_received": received,
        "raw_produce_events_per_s": round(len(events) / (produced - started)),
        "raw_passthrough_events_per_s": round(received / (finished - started)),
    }


class Validators:
    """The validators' HTTP heads: final tree sizes, and first-seen-final time per height."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.client = httpx.Client(timeout=10)
        # height → tree size: blocks are immutable, so one fetch serves every validator (a
        # fetch per validator and height cost the validators CPU the bench was measuring).
        self._sizes: dict[int, int] = {}

    def final(self, url: str) -> tuple[int, int]:
        """(final height, its tree size), (-1, 0) before anything is final."""
        head = self.client.get(f"{url}/v1/head").json()
        height = head.get("final_height")
        if not isinstance(height, int):
            return -1, 0
        if height not in self._sizes:
            block = self.client.get(f"{url}/v1/blocks/{height}").json()
            self._sizes[height] = int(block["header"]["tree_size"])
        return height, self._sizes[height]

    def head_tree_size(self, url: str) -> int:
        return int(self.client.get(f"{url}/v1/head").json()["tree_size"])

    def wait_all_final(self, tree_size: int, *, timeout: float, every: float = 0.05) -> float:
        deadline = time.monotonic() + timeout
        pending = set(self.urls)
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"not final at tree size {tree_size}: {sorted(pending)}")
            for url in list(pending):
                try:
                    if self.final(url)[1] >= tree_size:
                        pending.discard(url)
                except httpx.HTTPError:
                    pass
            if pending:
                time.sleep(every)
        return time.perf_counter()

    def wait_idle(self, *, timeout: float) -> int:
        """Block until validator-1's final tree size equals its head tree size; returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                head = self.head_tree_size(self.urls[0])
                if self.final(self.urls[0])[1] == head:
                    return head
            except (httpx.HTTPError, KeyError):
                pass
            time.sleep(0.2)
        raise TimeoutError("the system did not settle")


#: The services' settings for the bench: no per-address rate limit (docs/auth.md).
UNLIMITED: Final = {"CARELEDGER_RATE_LIMIT_PER_SECOND": "0"}


def service_pids(up_pid: int, ports: dict[str, int]) -> dict[str, int]:
    children = Path(f"/proc/{up_pid}/task/{up_pid}/children").read_text().split()
    found: dict[str, int] = {}
    for child in children:
        try:
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for name, port in ports.items():
            if f"CARELEDGER_PORT={port}".encode() in environ:
                found[name] = int(child)
    return found


def broker_pid(up_pid: int) -> int | None:
    for child in Path(f"/proc/{up_pid}/task/{up_pid}/children").read_text().split():
        try:
            if b"tansu" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
        except OSError:
            continue
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children of each of its threads, recursively): the
    sealer's verify pool is a forkserver and its workers (ADR 0010)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(children)
            stack.extend(children)
    return found


def tree_cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds of `pid` itself and of its live descendants (0 for one that ended)."""
    below = 0.0
    for child in descendants(pid):
        try:
            below += cpu_seconds(child)
        except OSError:
            continue
    return cpu_seconds(pid), below


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def latency_run(
    kafka: KafkaSettings,
    validators: Validators,
    events: list[dict[str, Any]],
    base: int,
    rate: int,
) -> dict[str, object]:
    """Offer `events` (the first one a warm-up) at `rate` events/s; latency and throughput."""
    first_final: dict[int, float] = {}  # height → first time any validator reported it final
    first_verified: dict[int, float] = {}  # height → first time any validator had it as head
    stop = threading.Event()

    def record(seen: dict[int, float], upto: int, now: float) -> None:
        last = max(seen, default=-1)
        for h in range(last + 1, upto + 1):
            seen[h] = now

    def poll() -> None:
        client = httpx.Client(timeout=5)
        while not stop.is_set():
            for url in validators.urls:
                try:
                    head = client.get(f"{url}/v1/head").json()
                except httpx.HTTPError:
                    continue
                now = time.perf_counter()
                if isinstance(head.get("height"), int):
                    record(first_verified, head["height"], now)
                if isinstance(head.get("final_height"), int):
                    record(first_final, head["final_height"], now)
            time.sleep(POLL_MS / 1000)
        client.close()

    # A publisher keeps its producer warm: the first event (not timed) pays for the
    # connection and the idempotent producer's id, as a long-running platform did long ago.
    producer = Producer(kafka.producer_config())
    warm_up, events = events[0], events[1:]
    producer.produce(TOPIC, value=encode_event(warm_up), key=kafka_key(warm_up).encode())
    producer.flush(30)
    published: dict[tuple[str, str], float] = {}
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    started = time.perf_counter()
    wall_started = time.time()
    for n, event in enumerate(events):
        due = started + n / rate
        while (wait := due - time.perf_counter()) > 0:
            producer.poll(min(wait, 0.005))
        published[(event["source"], event["id"])] = time.perf_counter()
        producer.produce(
            TOPIC, value=encode_event(event), key=kafka_key(event).encode(), headers=HEADERS
        )
        producer.poll(0)
    producer.flush(30)
    sent = time.perf_counter() - started
    seconds = len(events) / rate
    validators.wait_all_final(base + 1 + len(events), timeout=120)
    time.sleep(0.2)
    stop.set()
    poller.join()

    latencies: list[float] = []
    to_sealed: list[float] = []  # publish → the block's `sealed_at` (wall clock, same host)
    to_verified: list[float] = []  # publish → first validator has verified its block
    first_second: list[float] = []
    last_second: list[float] = []
    blocks = 0
    final_times: list[float] = []  # per matched event, when its block was first seen final
    for height in sorted(first_final):
        block = validators.client.get(f"{validators.urls[0]}/v1/blocks/{height}").json()
        sealed_at = datetime.fromisoformat(block["header"]["sealed_at"]).timestamp()
        mine = 0
        for event in block["events"]:
            key = (event.get("source"), event.get("id"))
            if key in published:
                at = published.pop(key)
                latencies.append(first_final[height] - at)
                final_times.append(first_final[height])
                to_sealed.append(sealed_at - (at - started + wall_started))
                to_verified.append(first_verified.get(height, first_final[height]) - at)
                mine += 1
                if at - started < 1:
                    first_second.append(latencies[-1])
                elif at - started > seconds - 1:
                    last_second.append(latencies[-1])
        blocks += mine > 0
    return {
        "offered_events_per_s": rate,
        "achieved_publish_rate": round(len(events) / sent),
        "final_events_per_s": finality_rate(final_times),
        "events_matched": len(latencies),
        "blocks": blocks,
        "p50_ms": percentile_ms(latencies, 50),
        "p99_ms": percentile_ms(latencies, 99),
        "max_ms": percentile_ms(latencies, 100),
        "p50_ms_first_second": percentile_ms(first_second, 50),
        "p50_ms_last_second": percentile_ms(last_second, 50),
        "publish_to_sealed_at_p50_ms": percentile_ms(to_sealed, 50),
        "publish_to_sealed_at_p99_ms": percentile_ms(to_sealed, 99),
        "publish_to_first_verified_p50_ms": percentile_ms(to_verified, 50),
        "publish_to_first_verified_p99_ms": percentile_ms(to_verified, 99),
    }


def finality_rate(final_times: list[float]) -> int:
    """Events/s at which finality advanced: the events final after the first final block,
    over the time from it to the last. Leaves out the pipeline's fill time (publish → first
    final), which would make a short run at any load look slower than the system is."""
    if not final_times:
        return 0
    first, last = min(final_times), max(final_times)
    if last <= first:
        return 0
    return round(sum(t > first for t in final_times) / (last - first))


def percentile_ms(values: list[float], pct: int) -> float:
    if not values:
        return 0.0
    if pct >= 100 or len(values) < 2:
        return round(max(values) * 1000, 1)
    return round(statistics.quantiles(values, n=100)[pct - 1] * 1000, 1)


def kept_up(point: dict[str, object]) -> bool:
    """Whether the pipeline kept up with a sweep point's offered load: finality advanced at
    `KEPT_UP_RATE` of it or more, and no lag built up within the point (the p50 of the last
    second's events within `KEPT_UP_LAG` of the first second's, give or take one poll)."""
    values = [
        point[name]
        for name in (
            "offered_events_per_s",
            "final_events_per_s",
            "p50_ms_first_second",
            "p50_ms_last_second",
        )
    ]
    if not all(isinstance(value, int | float) for value in values):
        return False
    offered, final, first, last = cast("list[float]", values)
    return final >= KEPT_UP_RATE * offered and last <= KEPT_UP_LAG * first + POLL_MS


def offered_load_sweep(
    kafka: KafkaSettings,
    validators: Validators,
    key: SigningKey,
    burst: int,
    seconds: float,
) -> dict[str, object]:
    """Offer each SWEEP_FRACTIONS of the burst rate in turn, settled in between; the highest
    point kept up with is the sustainable rate, and the latency is measured at half of it."""
    rates = [max(1, round(burst * fraction)) for fraction in SWEEP_FRACTIONS]
    results: dict[str, object] = {}
    sweep: list[dict[str, object]] = []
    for fraction, rate in zip(SWEEP_FRACTIONS, rates, strict=True):
        # Each point's events are signed before it is timed.
        events = signed_events(key, 1 + round(rate * seconds), f"sweep-{fraction}")
        base = validators.wait_idle(timeout=120)
        point = latency_run(kafka, validators, events, base, rate)
        sweep.append({"offered_fraction": fraction, "kept_up": kept_up(point), **point})
    steady = [point for point in sweep if point["kept_up"]]
    sustainable = max((_offered(point) for point in steady), default=rates[0])
    target = max(1, round(sustainable * REPORTED_FRACTION))
    reported = next((point for point in sweep if _offered(point) == target), None)
    if reported is None:
        events = signed_events(key, 1 + round(target * seconds), "sweep-latency")
        base = validators.wait_idle(timeout=120)
        point = latency_run(kafka, validators, events, base, target)
        reported = {"offered_fraction": round(target / burst, 3), "kept_up": kept_up(point)}
        reported |= point
        sweep.append(reported)
    results["pipeline_sustainable_events_per_s"] = sustainable
    results["pipeline_sustainable_over_burst"] = round(sustainable / burst, 3)
    results |= {
        f"latency_{name}": value
        for name, value in reported.items()
        if name not in ("offered_fraction", "kept_up")
    }
    results["sweep"] = sorted(sweep, key=_offered)
    return results


def _offered(point: dict[str, object]) -> int:
    rate = point["offered_events_per_s"]
    return rate if isinstance(rate, int) else 0


def pipeline(
    work: Path,
    events: int,
    *,
    only: tuple[str, ...] = (),
    sweep_seconds: float | None = None,
) -> dict[str, object]:
    """Run `up` (`--only` these names); the throughput phase, then the sweep if asked."""
    work.mkdir(parents=True, exist_ok=True)
    offset = free_offset()
    options = ("--only", ",".join(only)) if only else ()
    # The bench reads the validators from one address faster than any client may (every
    # final block back to back): it measures the pipeline, so the rate limit is off.
    system: RunningSystem = start_system(
        work / "data", work / "up.log", offset, *options, settings=UNLIMITED
    )
    results: dict[str, object] = {}
    try:
        system.wait_for_output("all services ready", timeout=120)
        specs = default_services(port_offset=offset)
        urls = [s.url() for s in specs if s.name.startswith("validator-")]
        ports = {s.name: s.port for s in specs if not only or s.name in only}
        key = read_key_file(work / "data" / "keys" / "publisher-demo.json")
        kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{BROKER_PORT + offset}")
        validators = Validators(urls)
        throughput_events = signed_events(key, events, "throughput")

        base = validators.wait_idle(timeout=60)
        pids = service_pids(system.process.pid, ports)
        broker = broker_pid(system.process.pid)
        if broker is not None:
            pids["broker"] = broker
        cpu_before = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
        producer = Producer(kafka.producer_config())
        started = time.perf_counter()
        produce_all(producer, throughput_events)
        producer.flush(60)
        produced = time.perf_counter() - started
        finished = validators.wait_all_final(base + events, timeout=300)
        elapsed = finished - started
        # CPU per event of each process with its children (the sealer's verify workers):
        # where the cores go (signature checks dominate).
        after = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
        below = {name: after[name][1] - cpu_before[name][1] for name in pids}
        used = {name: sum(after[name]) - sum(cpu_before[name]) for name in pids}
        results |= {
            f"cpu_us_per_event_{name}": round(used[name] / events * 1e6) for name in sorted(used)
        }
        results |= {
            f"cpu_us_per_event_{name}_children": round(below[name] / events * 1e6)
            for name in sorted(below)
            if below[name] > 0
        }
        pids.pop("broker", None)
        cores = len(os.sched_getaffinity(0))
        results |= {
            # How much of the box the measured processes used: well below 1, either other
            # work on the machine took the rest or the pipeline waited instead of computing.
            "pipeline_cores_used": round(sum(used.values()) / elapsed, 2),
            "pipeline_share_of_cores": round(sum(used.values()) / elapsed / cores, 3),
            # The throughput these processes' CPU per event allows on every core of the box.
            "pipeline_cpu_bound_events_per_s": round(cores * events / sum(used.values())),
            "pipeline_events": events,
            "pipeline_produce_events_per_s": round(events / produced),
            "pipeline_final_events_per_s": round(events / elapsed),
            "pipeline_seconds_to_final_on_all_3": round(elapsed, 2),
        }
        results |= {f"rss_mib_after_throughput_{n}": rss_mib(p) for n, p in sorted(pids.items())}
        if sweep_seconds is None:
            return results
        burst = round(events / elapsed)
        results |= offered_load_sweep(kafka, validators, key, burst, sweep_seconds)
        results |= {f"rss_mib_after_sweep_{n}": rss_mib(p) for n, p in sorted(pids.items())}
        results["chain_tree_size"] = validators.head_tree_size(urls[0])
    finally:
        if system.process.poll() is None:
            system.process.send_signal(signal.SIGINT)
            try:
                system.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                system.process.kill()
    return results


LEDGER = ("sealer", "validator-1", "validator-2", "validator-3")


def main(run: BenchRun | None = None) -> dict[str, object]:
    run = run or BenchRun.measure()
    events = run.size(N_PIPELINE, 5_000)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as directory:
        work = Path(directory)
        # The keys exist only once `up` has written them; raw uses a throwaway dev chain.
        subprocess.run(
            [sys.executable, "-m", "careledger", "init", "--data-dir", str(work / "data")],
            check=True,
            capture_output=True,
        )
        key = read_key_file(work / "data" / "keys" / "publisher-demo.json")
        raw_events = signed_events(key, run.size(N_RAW, 5_000), "raw")
        results = raw_passthrough(raw_events, work / "raw-broker.log")
        # The pipeline: broker, sealer and 3 validators, nothing else on the cores.
        results |= pipeline(
            work / "ledger",
            events,
            only=LEDGER,
            sweep_seconds=run.size(SWEEP_SECONDS, 3),
        )
        # The same throughput phase with every service of `careledger up` sharing the box:
        # identity, records and billing follow the chain (billing bills out of the blocks).
        whole = pipeline(work / "system", events)
        results |= {f"system_{name.removeprefix('pipeline_')}": v for name, v in whole.items()}
    cores = len(os.sched_getaffinity(0))
    ceiling = cores * 1e6 / (CHECKS_PER_EVENT * run.verify_us)
    final = results["pipeline_final_events_per_s"]
    raw = results["raw_passthrough_events_per_s"]
    results |= {"cores": cores, "pipeline_ceiling_events_per_s": round(ceiling)}
    if isinstance(final, int):
        results["pipeline_over_ceiling"] = round(final / ceiling, 3)
        if isinstance(raw, int) and raw:
            results["pipeline_over_raw"] = round(final / raw, 3)
        system = results.get("system_final_events_per_s")
        if isinstance(system, int) and final:
            results["system_over_pipeline"] = round(system / final, 3)
    return results
