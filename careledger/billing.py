"""`careledger billing replay`: verify a chain from genesis, run the billing contract again on
the inputs sealed in it, and check it reproduces exactly the billing events sealed there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from careledger.verify import chain_lines, verify_lines
from services.billing.core.replay import BillingReplay, ReplayReport
from shared.block import Block
from shared.chain import GenesisBlockError
from shared.errors import VerificationError
from shared.genesis import GenesisConfig, verify_genesis_event
from shared.keystore import read_genesis_file

app = typer.Typer(
    name="billing",
    help="Audit the billing decisions sealed on a chain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False)


class _Replaying:
    """Feeds each verified block to the replay; the replay starts at the genesis block."""

    def __init__(self, genesis: GenesisConfig | None) -> None:
        self.replay = None if genesis is None else BillingReplay(genesis)
        self.blocks = 0
        self.events = 0

    def add(self, block: Block) -> None:
        if self.replay is None:
            # Block 0 has just verified, so its one event is the genesis this chain runs on.
            self.replay = BillingReplay(verify_genesis_event(block.events[0]))
        self.replay.add_block(block.header.height, block.events)
        self.blocks += 1
        self.events += len(block.events)

    def report(self) -> ReplayReport:
        if self.replay is None:  # `verify_lines` refuses an export without genesis first
            raise GenesisBlockError("the export is empty: no genesis block")
        return self.replay.finish()


@app.command()
def replay(
    origin: Annotated[
        str, typer.Option("--from", help="A validator URL (its /v1/chain) or an NDJSON export.")
    ],
    genesis: Annotated[
        Path | None,
        typer.Option(help="Pin this genesis file: the export's block 0 must carry it."),
    ] = None,
) -> None:
    """Verify the chain, re-run the tariff contract on every sealed consultation it billed or
    rejected, and re-derive payments, settlements and refunds; exit 0 only if the chain
    verifies and every sealed billing event is what the contract decides."""
    trusted, config = read_genesis_file(genesis) if genesis else (None, None)
    replaying = _Replaying(config)
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
        task = progress.add_task("replaying", total=None)

        def advance(block: Block) -> None:
            replaying.add(block)
            progress.update(
                task,
                description=f"block {block.header.height}: "
                f"{replaying.blocks} blocks, {replaying.events} events replayed",
            )

        try:
            verify_lines(
                chain_lines(origin, client=client), trusted_genesis=trusted, on_block=advance
            )
            report = replaying.report()
        except VerificationError as fault:
            progress.stop()
            counts = {"blocks": replaying.blocks, "events": replaying.events}
            typer.echo(
                json.dumps(
                    {"replayed": False, "verified": False, "fault": fault.evidence(), **counts}
                )
            )
            raise typer.Exit(1) from fault
    typer.echo(json.dumps(report.as_dict()))
    raise typer.Exit(0 if report.ok else 1)
