"""The `careledger` command line: run, initialise, inspect and feed a CareLedger chain."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from careledger import billing, credential
from careledger.client import ReceiptClient, complete_event, produce_event
from careledger.devchain import DEV_CHAIN_ID, ensure_dev_chain, generate_key
from careledger.supervisor import readiness
from careledger.topology import BROKER_PORT, cluster_settings, default_services
from careledger.up import UpOptions, run_up, stdout_console
from careledger.verify import chain_lines, verify_lines
from careledger.witness import witness_round
from shared.block import Block
from shared.errors import CareLedgerError, VerificationError
from shared.genesis import check_chain_id
from shared.kafka import ensure_topics
from shared.keystore import read_genesis_file, read_key_file
from shared.sources import utc_now
from shared.topics import INPUT_TOPICS, TopicNames, check_topic_prefix
from shared.witness import WitnessRefusalError

app = typer.Typer(
    name="careledger",
    help="CareLedger: a tamper-evident event ledger for telemedicine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False)
app.add_typer(credential.app, name="credential")
app.add_typer(billing.app, name="billing")

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir", envvar="CARELEDGER_DATA_DIR", help="Keys, genesis and SQLite stores."
    ),
]
PortOffset = Annotated[
    int,
    typer.Option(
        "--port-offset",
        envvar="CARELEDGER_PORT_OFFSET",
        help="Added to every default port (8101-8113, broker 9092), to run beside another copy.",
    ),
]


def _topic_prefix(value: str) -> str:
    try:
        return check_topic_prefix(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _chain_id(value: str | None) -> str | None:
    try:
        return None if value is None else check_chain_id(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


TopicPrefix = Annotated[
    str,
    typer.Option(
        envvar="CARELEDGER_TOPIC_PREFIX",
        callback=_topic_prefix,
        help="The chain's namespace on the cluster: its topics, consumer groups and client ids "
        "start with it (several chains share a cluster, docs/chains.md).",
    ),
]
ChainId = Annotated[
    str | None,
    typer.Option(
        callback=_chain_id,
        help=f"The chain id a new genesis names (default {DEV_CHAIN_ID}); an existing "
        "genesis must already name it.",
    ),
]


@app.command()
def up(
    data_dir: DataDir = Path("data"),
    port_offset: PortOffset = 0,
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for /readyz.")] = 90.0,
    log_format: Annotated[str, typer.Option(help="Service log format: text or json.")] = "text",
    partitions: Annotated[int, typer.Option(help="Partitions of the input topics.")] = 3,
    topic_prefix: TopicPrefix = "",
    chain_id: ChainId = None,
    only: Annotated[
        str,
        typer.Option(
            help="Run only these services, comma-separated (e.g. 'sealer,validator-1,"
            "validator-2,validator-3' for the ledger alone); default: all."
        ),
    ] = "",
) -> None:
    """Run everything: embedded broker (unless KAFKA_BOOTSTRAP_SERVERS is set), topics, dev keys
    and genesis, and every service (or those `--only` names); Ctrl-C or SIGTERM stops it all."""
    names = frozenset(name.strip() for name in only.split(",") if name.strip())
    known = {spec.name for spec in default_services()}
    if names - known:
        raise typer.BadParameter(
            f"unknown service(s) {', '.join(sorted(names - known))}; "
            f"known: {', '.join(sorted(known))}",
            param_hint="--only",
        )
    options = UpOptions(
        data_dir,
        port_offset,
        ready_timeout,
        log_format,
        partitions,
        topic_prefix,
        names,
        chain_id=chain_id,
    )
    raise typer.Exit(run_up(options, stdout_console()))


@app.command()
def init(data_dir: DataDir = Path("data"), chain_id: ChainId = None) -> None:
    """Write the dev key files and the signed genesis (only what is missing)."""
    chain = ensure_dev_chain(data_dir, chain_id=chain_id)
    for name, did in chain.dids.items():
        marker = "new " if name in chain.created_keys else "kept"
        typer.echo(f"{marker} {data_dir / 'keys' / (name + '.json')}  {did}")
    marker = "new " if chain.created_pseudonym_key else "kept"
    typer.echo(f"{marker} {data_dir / 'keys' / 'pseudonym.key'}  (secret: patient pseudonyms)")
    state = "new" if chain.created_genesis else "kept"
    typer.echo(f"{state} {data_dir / 'genesis.json'}  chain {chain.chain_id}")


@app.command()
def topics(
    bootstrap: Annotated[
        str, typer.Option(envvar="KAFKA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers.")
    ] = f"127.0.0.1:{BROKER_PORT}",
    topic_prefix: TopicPrefix = "",
    partitions: Annotated[int, typer.Option(help="Partitions of the input topics.")] = 3,
    replication_factor: Annotated[
        int, typer.Option(help="-1 takes the broker default (3 on the production cluster).")
    ] = -1,
) -> None:
    """Create the brief's topics on a cluster (idempotent; existing topics are left alone)."""
    names = TopicNames(topic_prefix)
    specs = names.specs(input_partitions=partitions)
    created = ensure_topics(
        cluster_settings(bootstrap, names, "topics"), specs, replication_factor=replication_factor
    )
    for spec in specs:
        typer.echo(f"{'created' if spec.name in created else 'exists '} {spec.name}")


@app.command()
def keygen(
    name: Annotated[str, typer.Argument(help="Key name: writes <data-dir>/keys/NAME.json.")],
    data_dir: DataDir = Path("data"),
    force: Annotated[bool, typer.Option(help="Replace an existing key file.")] = False,
) -> None:
    """Generate an Ed25519 key (did:key) in the brief's key-file format."""
    if not name.replace("-", "").replace("_", "").isalnum():
        raise typer.BadParameter("use letters, digits, '-' and '_' only", param_hint="NAME")
    key = generate_key(data_dir, name, overwrite=force)
    typer.echo(key.did)


@app.command()
def status(
    port_offset: PortOffset = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Health of every service (exit code 1 unless all are ready)."""
    services = default_services(port_offset=port_offset)
    with httpx.Client(timeout=2.0) as client:
        states = {spec.name: readiness(client, spec) for spec in services}
    if as_json:
        typer.echo(json.dumps(states, indent=2))
    else:
        table = Table(title="CareLedger services")
        for column in ("service", "url", "status"):
            table.add_column(column)
        for spec in services:
            state = states[spec.name]
            table.add_row(spec.name, spec.url(), state, style=None if state == "ready" else "red")
        Console().print(table)
    raise typer.Exit(0 if all(state == "ready" for state in states.values()) else 1)


@app.command()
def publish(
    event: Annotated[
        str,
        typer.Argument(
            help="The event as JSON (type, data, optional subject/source/id/time), "
            "a file path, or - for stdin."
        ),
    ],
    key: Annotated[Path, typer.Option(help="Key file of the signer.")] = Path(
        "data/keys/publisher-demo.json"
    ),
    topic: Annotated[str, typer.Option(help="Logical topic.")] = "clinical.events",
    topic_prefix: TopicPrefix = "",
    bootstrap: Annotated[
        str, typer.Option(envvar="KAFKA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers.")
    ] = f"127.0.0.1:{BROKER_PORT}",
    source: Annotated[str | None, typer.Option(help="Default `source` URI.")] = None,
) -> None:
    """Sign an event with a key file and produce it to a topic; prints where it landed."""
    if topic not in INPUT_TOPICS:
        raise typer.BadParameter(f"one of {', '.join(INPUT_TOPICS)}", param_hint="--topic")
    partial = _read_json_argument(event)
    signer = read_key_file(key)
    full = complete_event(
        partial, key=signer, default_source=source or f"urn:careledger:cli:{key.stem}"
    )
    names = TopicNames(topic_prefix)
    delivery = produce_event(
        cluster_settings(bootstrap, names, "publish"), names.physical(topic), full
    )
    typer.echo(json.dumps(asdict(delivery)))


@app.command()
def verify(
    origin: Annotated[
        str, typer.Option("--from", help="A validator URL (its /v1/chain) or an NDJSON export.")
    ],
    genesis: Annotated[
        Path | None,
        typer.Option(help="Pin this genesis file: the export's block 0 must carry it."),
    ] = None,
) -> None:
    """Verify a whole chain offline from genesis; exit 0 only if everything verifies, else
    print the first fault with its evidence and exit 1."""
    trusted = read_genesis_file(genesis)[0] if genesis else None
    counts = {"blocks": 0, "events": 0}
    with (
        httpx.Client(timeout=30.0) as client,
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task("verifying", total=None)

        def advance(block: Block) -> None:
            counts["blocks"] += 1
            counts["events"] += len(block.events)
            progress.update(
                task,
                description=f"block {block.header.height}: "
                f"{counts['blocks']} blocks, {counts['events']} events verified",
            )

        try:
            head = verify_lines(
                chain_lines(origin, client=client), trusted_genesis=trusted, on_block=advance
            )
        except VerificationError as fault:
            progress.stop()
            typer.echo(json.dumps({"verified": False, "fault": fault.evidence(), **counts}))
            raise typer.Exit(1) from fault
    typer.echo(json.dumps({"verified": True, **asdict(head), **counts}))


@app.command()
def proof(
    source: Annotated[str, typer.Argument(help="The event's `source`.")],
    event_id: Annotated[str, typer.Argument(metavar="ID", help="The event's `id`.")],
    validator: Annotated[str, typer.Option(help="Validator base URL.")] = "http://127.0.0.1:8111",
    genesis: Annotated[Path, typer.Option(help="The genesis to trust.")] = Path(
        "data/genesis.json"
    ),
) -> None:
    """Fetch the inclusion proof of an event against the final head and verify it (sealer
    signature, quorum of genesis validators, Merkle path); exit 1 with evidence otherwise."""
    _, config = read_genesis_file(genesis)
    with ReceiptClient(validator, genesis=config) as receipts:
        try:
            receipt = receipts.fetch(source, event_id)
        except VerificationError as fault:
            typer.echo(json.dumps({"verified": False, "fault": fault.evidence()}))
            raise typer.Exit(1) from fault
    typer.echo(json.dumps({"verified": True, **asdict(receipt)}))


@app.command()
def witness(
    validator: Annotated[str, typer.Argument(help="Validator base URL.")],
    state_dir: Annotated[
        Path, typer.Option(help="The witness's own state: pinned genesis, key, last checkpoint.")
    ] = Path("data/witness"),
    genesis: Annotated[
        Path | None,
        typer.Option(help="Pin this genesis file (else the validator's, on first use)."),
    ] = None,
    origin: Annotated[
        str | None, typer.Option(help="The checkpoint origin (default careledger/<chain_id>).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="This witness's key name (default its did:key).")
    ] = None,
    interval: Annotated[
        float, typer.Option(min=0.0, help="Seconds between rounds; 0 runs one round.")
    ] = 0.0,
) -> None:
    """Witness a chain's checkpoints (C2SP tlog-witness, run by you): verify the validators'
    note signatures and a consistency proof from the last size cosigned, then cosign. Prints
    one JSON line per round; refuses a rollback or fork with the reason and exits 1."""
    with httpx.Client(timeout=10.0) as client:
        while True:
            try:
                done = witness_round(
                    validator,
                    state_dir=state_dir,
                    now=utc_now(),
                    client=client,
                    genesis_file=genesis,
                    origin=origin,
                    key_name=name,
                )
            except WitnessRefusalError as refusal:
                typer.echo(
                    json.dumps(
                        {
                            "witnessed": False,
                            "reason": refusal.reason,
                            "detail": refusal.message,
                            "known_size": refusal.known_size,
                        }
                    )
                )
                raise typer.Exit(1) from refusal
            except VerificationError as fault:
                typer.echo(json.dumps({"witnessed": False, "fault": fault.evidence()}))
                raise typer.Exit(1) from fault
            typer.echo(json.dumps({"witnessed": True, **asdict(done)}))
            if interval <= 0:
                return
            time.sleep(interval)


def _read_json_argument(argument: str) -> dict[str, object]:
    if argument == "-":
        text = sys.stdin.read()
    elif argument.lstrip().startswith(("{", "[")):
        text = argument
    elif os.path.exists(argument):
        text = Path(argument).read_text(encoding="utf-8")
    else:
        raise typer.BadParameter("neither JSON, a readable file, nor -", param_hint="EVENT")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="EVENT") from exc
    if not isinstance(value, dict):
        raise typer.BadParameter("the event must be a JSON object", param_hint="EVENT")
    return value


def main() -> None:
    """Entry point: domain errors become one clear line and exit code 2, not a traceback."""
    try:
        app()
    except CareLedgerError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)
