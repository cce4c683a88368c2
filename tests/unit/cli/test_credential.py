"""`careledger credential issue|verify`: sign with the authority's key file, verify offline."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from careledger.cli import app
from careledger.devchain import ensure_dev_chain
from shared.credentials import credential_digest, verify_practitioner_credential
from shared.crypto import SigningKey
from shared.keystore import write_key_file

runner = CliRunner()
PRACTITIONER = SigningKey.from_seed(b"\x07" * 32).did


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data")
    ensure_dev_chain(path)
    return path


def issue_arguments(data_dir: Path, **overrides: str) -> list[str]:
    options = {
        "--key": str(data_dir / "keys" / "authority-demo.json"),
        "--subject": PRACTITIONER,
        "--npi": "1234567893",
        "--license-number": "A12345",
        "--jurisdiction": "US-CA",
        "--license-expires": "2099-12-31",
        "--role": "physician",
        "--specialty": "207R00000X",
    }
    options.update(overrides)
    return ["credential", "issue", *(part for pair in options.items() for part in pair)]


def issue(data_dir: Path, *extra: str, **overrides: str) -> dict[str, Any]:
    result = runner.invoke(app, [*issue_arguments(data_dir, **overrides), *extra])
    assert result.exit_code == 0, result.output
    credential = json.loads(result.stdout)
    assert isinstance(credential, dict)
    return credential


def verify(*arguments: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["credential", "verify", *arguments])
    return result.exit_code, json.loads(result.stdout)


def test_issue_signs_with_the_authority_key_and_sensible_defaults(data_dir: Path) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    credential = issue(data_dir)
    authority = json.loads((data_dir / "keys" / "authority-demo.json").read_text())["did"]
    assert credential["issuer"] == authority
    assert credential["id"].startswith("urn:uuid:")
    valid_from = datetime.fromisoformat(credential["validFrom"])
    assert before <= valid_from <= datetime.now(UTC)
    # A licence far in the future: the credential lasts one year.
    assert datetime.fromisoformat(credential["validUntil"]) == valid_from + timedelta(days=365)
    verified = verify_practitioner_credential(
        credential, now=valid_from, trusted_issuers={authority}
    )
    assert verified.subject.id == PRACTITIONER


def test_the_default_validity_ends_with_the_licence(data_dir: Path) -> None:
    expires = datetime.now(UTC).date() + timedelta(days=30)
    credential = issue(data_dir, **{"--license-expires": expires.isoformat()})
    end = f"{(expires + timedelta(days=1)).isoformat()}T00:00:00Z"
    assert credential["validUntil"] == end


def test_issue_writes_a_file_and_verify_reads_it_with_the_genesis_authorities(
    data_dir: Path, tmp_path: Path
) -> None:
    output = tmp_path / "credential.json"
    issue_result = runner.invoke(
        app,
        [
            *issue_arguments(data_dir),
            "--valid-from",
            "2025-01-01T00:00:00Z",
            "--valid-until",
            "2099-01-01T00:00:00Z",
            "--id",
            "urn:uuid:0193b5a0-0000-7000-8000-00000000abcd",
            "-o",
            str(output),
        ],
    )
    assert issue_result.exit_code == 0, issue_result.output
    credential = json.loads(output.read_text())
    assert credential["id"] == "urn:uuid:0193b5a0-0000-7000-8000-00000000abcd"
    code, report = verify(str(output), "--genesis", str(data_dir / "genesis.json"))
    assert code == 0
    assert report["verified"] is True
    assert all(check["ok"] for check in report["checks"])
    assert "revocation" in {check["check"] for check in report["checks"]}
    assert credential_digest(credential) in next(
        check["detail"] for check in report["checks"] if check["check"] == "revocation"
    )


def test_verify_without_trust_fails_as_untrusted(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "credential.json"
    path.write_text(json.dumps(issue(data_dir)))
    code, report = verify(str(path))
    assert code == 1
    assert report["reason"] == "untrusted_issuer"
    authority = json.loads(path.read_text())["issuer"]
    code, report = verify(str(path), "--trust", authority)
    assert code == 0


def test_verify_reports_a_tampered_credential(data_dir: Path, tmp_path: Path) -> None:
    credential = issue(data_dir)
    credential["credentialSubject"]["role"] = "nurse"
    path = tmp_path / "credential.json"
    path.write_text(json.dumps(credential))
    code, report = verify(str(path), "--genesis", str(data_dir / "genesis.json"))
    assert code == 1
    assert report["reason"] == "bad_proof"
    proof = next(check for check in report["checks"] if check["check"] == "proof")
    assert proof["ok"] is False
    assert "does not verify" in proof["detail"]


def test_a_key_that_is_not_an_authority(data_dir: Path, tmp_path: Path) -> None:
    rogue = tmp_path / "rogue.json"
    write_key_file(rogue, SigningKey.from_seed(b"\x09" * 32))
    path = tmp_path / "credential.json"
    path.write_text(json.dumps(issue(data_dir, **{"--key": str(rogue)})))
    code, report = verify(str(path), "--genesis", str(data_dir / "genesis.json"))
    assert (code, report["reason"]) == (1, "untrusted_issuer")


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"--npi": "1234567890"}, "check digit"),
        ({"--npi": "12345"}, "ten digits"),
        ({"--subject": "did:example:123"}, "did:key"),
        ({"--jurisdiction": "California"}, "jurisdiction"),
        ({"--license-expires": "31/12/2027"}, "expires"),
        ({"--specialty": "cardiology"}, "specialty"),
        ({"--key": "/nonexistent/key.json"}, "cannot read key file"),
        ({"--valid-until": "2020-01-01T00:00:00Z"}, "later than validFrom"),
    ],
)
def test_issue_errors_are_clear(data_dir: Path, overrides: dict[str, str], says: str) -> None:
    result = runner.invoke(app, issue_arguments(data_dir, **overrides))
    assert result.exit_code == 2
    assert says in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_issue_refuses_an_unknown_role(data_dir: Path) -> None:
    result = runner.invoke(app, issue_arguments(data_dir, **{"--role": "wizard"}))
    assert result.exit_code == 2
    assert "wizard" in result.stderr


@pytest.mark.parametrize(("content", "says"), [("{not json", "not JSON"), (None, "cannot read")])
def test_verify_errors_are_clear(tmp_path: Path, content: str | None, says: str) -> None:
    path = tmp_path / "credential.json"
    if content is not None:
        path.write_text(content)
    result = runner.invoke(app, ["credential", "verify", str(path)])
    assert result.exit_code == 2
    assert says in result.stderr


def test_verify_reads_stdin_and_reports_a_non_credential(tmp_path: Path) -> None:
    result = runner.invoke(app, ["credential", "verify", "-"], input="[1, 2]")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["reason"] == "malformed"
