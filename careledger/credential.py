"""`careledger credential issue|verify`: an authority signs a practitioner licence credential
with its own key file (the key never leaves the machine); anyone verifies one offline."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from shared.credentials import (
    PractitionerLicense,
    PractitionerRole,
    inspect_credential,
    issue_practitioner_credential,
)
from shared.errors import CareLedgerError
from shared.keystore import read_genesis_file, read_key_file

app = typer.Typer(
    name="credential",
    help="Issue and verify practitioner licence credentials (W3C VC 2.0, eddsa-jcs-2022).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False)

# A credential outlives neither the licence nor a year: authorities re-issue yearly.
_LONGEST_VALIDITY: Final = timedelta(days=365)
_USAGE_ERROR: Final = 2


@app.command()
def issue(
    *,
    key: Annotated[Path, typer.Option(help="The authority's key file.")],
    subject: Annotated[str, typer.Option(help="The practitioner's did:key.")],
    npi: Annotated[str, typer.Option(help="National Provider Identifier (10 digits).")],
    license_number: Annotated[str, typer.Option(help="Licence number at the board.")],
    jurisdiction: Annotated[str, typer.Option(help="ISO 3166-2 code of the board, e.g. US-CA.")],
    license_expires: Annotated[str, typer.Option(help="Last valid day, YYYY-MM-DD.")],
    role: Annotated[PractitionerRole, typer.Option(help="The licensed profession.")],
    specialty: Annotated[str, typer.Option(help="NUCC taxonomy code, e.g. 207R00000X.")],
    valid_from: Annotated[
        str | None, typer.Option(help="validFrom (dateTimeStamp); default: now.")
    ] = None,
    valid_until: Annotated[
        str | None,
        typer.Option(help="validUntil; default: end of the licence's last day, at most 1 year."),
    ] = None,
    credential_id: Annotated[
        str | None, typer.Option("--id", help="Credential id URI; default: a new urn:uuid.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Sign a PractitionerLicenseCredential with the authority's key file."""
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        authority = read_key_file(key)
        licence = PractitionerLicense.model_validate(
            {
                "id": subject,
                "npi": npi,
                "license": {
                    "number": license_number,
                    "jurisdiction": jurisdiction,
                    "expires": license_expires,
                },
                "role": role.value,
                "specialty": specialty,
            }
        )
        start = valid_from or _stamp(now)
        credential = issue_practitioner_credential(
            authority,
            subject=licence,
            valid_from=start,
            valid_until=valid_until or _default_until(now, licence.license.expires),
            credential_id=credential_id or f"urn:uuid:{uuid.uuid4()}",
            created=_stamp(now),
        )
    except ValidationError as exc:
        _fail(_explain(exc))
    except CareLedgerError as exc:
        _fail(str(exc))
    text = json.dumps(credential, indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror}")
    err.print(f"wrote {output}")


@app.command()
def verify(
    file: Annotated[Path, typer.Argument(help="The credential (JSON), or - for stdin.")],
    genesis: Annotated[
        Path | None, typer.Option(help="Trust the licensing authorities this genesis names.")
    ] = None,
    trust: Annotated[
        list[str] | None, typer.Option(help="Also trust this issuer DID (repeatable).")
    ] = None,
) -> None:
    """Check a credential offline and print every check; exit 0 only if all pass."""
    trusted = set(trust or ())
    try:
        if genesis is not None:
            trusted.update(read_genesis_file(genesis)[1].authorities)
    except CareLedgerError as exc:
        _fail(str(exc))
    credential = _read_credential(file)
    report = inspect_credential(credential, now=datetime.now(UTC), trusted_issuers=trusted)
    typer.echo(json.dumps(report.as_dict(), indent=2))
    if not report.verified:
        raise typer.Exit(1)


def _read_credential(file: Path) -> Any:
    try:
        text = typer.get_text_stream("stdin").read() if str(file) == "-" else file.read_text()
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror}")
    except UnicodeDecodeError:
        _fail(f"{file} is not UTF-8 text")
    try:
        return json.loads(text)
    except ValueError as exc:
        _fail(f"{file} is not JSON: {exc}")


def _default_until(now: datetime, licence_expires: date) -> str:
    # validUntil is exclusive, so the end of the last licensed day is the next midnight (UTC).
    end_of_licence = datetime.combine(
        licence_expires + timedelta(days=1), datetime.min.time(), tzinfo=UTC
    )
    return _stamp(min(end_of_licence, now + _LONGEST_VALIDITY))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _explain(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
        for error in exc.errors(include_url=False)
    )


def _fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(_USAGE_ERROR)
