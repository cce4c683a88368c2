"""`careledger up`: broker, topics, dev chain, every service; Ctrl-C stops it all."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from careledger.broker import EmbeddedBroker
from careledger.devchain import archive_previous_run, ensure_dev_chain
from careledger.supervisor import Supervisor, child_environment, install_stop_signals
from careledger.topology import BROKER_PORT, ServiceSpec, cluster_settings, default_services
from shared.kafka import KafkaSettings, ensure_topics
from shared.topics import TopicNames, TopicSpec

#: Services get this long to stop after SIGTERM before SIGKILL; the whole stop stays < 10 s.
STOP_TIMEOUT = 7.0
_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta")


@dataclass(frozen=True, slots=True)
class UpOptions:
    data_dir: Path
    port_offset: int
    ready_timeout: float
    log_format: str
    input_partitions: int
    topic_prefix: str
    #: The services to run (their names); empty: all of them.
    only: frozenset[str] = frozenset()
    #: The chain id of a new dev genesis (None: `DEV_CHAIN_ID`); a kept one must name it.
    chain_id: str | None = None


class PrefixedLog:
    """`name | line` per service, one colour each, lines never interleaved mid-way."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._lock = threading.Lock()
        self._colours: dict[str, str] = {}

    def line(self, name: str, text: str) -> None:
        colour = self._colours.setdefault(name, _COLOURS[len(self._colours) % len(_COLOURS)])
        with self._lock:
            self._console.print(
                f"[{colour}]{name:>11} |[/] {text}", markup=True, highlight=False, soft_wrap=True
            )

    def announce(self, text: str) -> None:
        with self._lock:
            self._console.print(f"[bold red]{text}[/]" if text.startswith("!!") else text)


def run_up(options: UpOptions, console: Console) -> int:
    log = PrefixedLog(console)
    stop = threading.Event()
    install_stop_signals(stop)
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None if external else EmbeddedBroker(port=BROKER_PORT + options.port_offset)
    if broker is not None:
        broker.start()
        log.announce(f"embedded broker (Tansu) listening on {broker.bootstrap_servers}")
    try:
        bootstrap, kafka, specs = _prepare(options, broker, external, log)
    except BaseException:
        # A chain that cannot start (a kept genesis of another chain, keys that do not
        # match it, topics refused) leaves no broker behind.
        if broker is not None:
            broker.stop(timeout=1.5)
        raise
    services = [
        spec
        for spec in default_services(port_offset=options.port_offset)
        if not options.only or spec.name in options.only
    ]
    env = child_environment(
        {
            **one_box_defaults(services, os.environ),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CARELEDGER_DATA_DIR": str(options.data_dir.resolve()),
            "CARELEDGER_LOG_FORMAT": options.log_format,
            "CARELEDGER_TOPIC_PREFIX": options.topic_prefix,
            "CARELEDGER_INPUT_PARTITIONS": str(options.input_partitions),
        }
    )
    supervisor = Supervisor(services, env=env, sink=log.line, announce=log.announce)
    supervisor.start_all()
    try:
        states = supervisor.wait_ready(timeout=options.ready_timeout)
        console.print(_table(services, states, tls=supervisor.tls is not None))
        if all(state == "ready" for state in states.values()):
            log.announce("all services ready — Ctrl-C stops everything")
        else:
            log.announce("!! some services are not ready yet; they keep being watched")
        while not stop.wait(0.5):
            supervisor.tend()
            if broker is not None and not broker.alive():
                log.announce("!! the embedded broker died; restarting it (its topics are gone)")
                broker.stop()
                broker.start()
                ensure_topics(kafka, specs)
    finally:
        started = time.monotonic()
        log.announce("stopping services …")
        killed = supervisor.stop_all(timeout=STOP_TIMEOUT)
        if broker is not None:
            broker.stop(timeout=1.5)
        suffix = f" (killed: {', '.join(killed)})" if killed else ""
        log.announce(f"stopped in {time.monotonic() - started:.1f} s{suffix}")
    return 0


def _prepare(
    options: UpOptions, broker: EmbeddedBroker | None, external: str | None, log: PrefixedLog
) -> tuple[str, KafkaSettings, list[TopicSpec]]:
    """Topics, and the dev chain's keys and genesis (archiving a previous embedded run)."""
    bootstrap = external or (broker.bootstrap_servers if broker else "")
    topics = TopicNames(options.topic_prefix)
    kafka = cluster_settings(bootstrap, topics, "up")
    specs = topics.specs(input_partitions=options.input_partitions)
    created = ensure_topics(kafka, specs)
    log.announce(f"topics: {len(created)} created, {len(specs) - len(created)} already there")
    if broker is not None:
        archived = archive_previous_run(options.data_dir, now=datetime.now(UTC))
        if archived is not None:
            log.announce(
                f"!! the embedded broker keeps no topics between runs, so the previous chain "
                f"cannot continue: its stores and genesis moved to {archived}; starting a new "
                "dev chain with the same keys (set KAFKA_BOOTSTRAP_SERVERS for a lasting one)"
            )
    chain = ensure_dev_chain(options.data_dir, chain_id=options.chain_id)
    log.announce(
        f"dev chain {chain.chain_id!r} in {options.data_dir}: "
        f"{len(chain.created_keys)} key files written, {len(chain.dids) - len(chain.created_keys)} "
        f"kept; {'wrote a new' if chain.created_genesis else 'kept the'} genesis; "
        f"{'wrote a new' if chain.created_pseudonym_key else 'kept the'} pseudonym key"
    )
    return bootstrap, kafka, specs


#: The sealer's verify pool size (ADR 0010).
VERIFY_WORKERS_ENV = "CARELEDGER_SEALER_VERIFY_WORKERS"


def one_box_defaults(services: Sequence[ServiceSpec], environ: Mapping[str, str]) -> dict[str, str]:
    """Settings for services that share this box, unless the environment names its own.

    With the sealer and validators on one box, the sealer checks signatures in process
    (1 verify worker): a pool would move the checks to processes competing for the very cores
    the validators need, and add its IPC (ADR 0010, amended 2026-12-04: 182 against 238 µs of
    CPU per event, workers included, in the one-box pipeline bench)."""
    names = {spec.name for spec in services}
    if VERIFY_WORKERS_ENV in environ or "sealer" not in names:
        return {}
    if not any(name.startswith("validator-") for name in names):
        return {}
    return {VERIFY_WORKERS_ENV: "1"}


def _table(services: Sequence[ServiceSpec], states: dict[str, str], *, tls: bool) -> Table:
    table = Table(title="CareLedger services")
    table.add_column("service")
    table.add_column("url")
    table.add_column("status")
    for spec in services:
        state = states.get(spec.name, "?")
        style = "green" if state == "ready" else "red"
        table.add_row(spec.name, spec.url(tls=tls), f"[{style}]{state}[/]")
    return table


def stdout_console() -> Console:
    return Console(file=sys.stdout, highlight=False)
