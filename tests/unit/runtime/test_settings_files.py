"""Secrets read from files (`*_FILE`), the variables a settings class reads, and one-line
configuration errors that never repeat a secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy.engine import make_url

from services.identity.config import IdentitySettings
from services.sealer.config import SealerSettings
from services.validator.config import ValidatorSettings
from shared.runtime.server import configuration_problems

URL = "postgresql+psycopg://careledger@postgres:5432/sealer"


def secret(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "secret"
    path.write_text(text)
    return path


def test_database_password_comes_from_its_file_into_the_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    password = "p@ss/word:with#chars"  # noqa: S105 - a test value, URL-escaping is the point
    monkeypatch.setenv("CARELEDGER_DATABASE_URL", URL)
    monkeypatch.setenv("CARELEDGER_DATABASE_PASSWORD_FILE", str(secret(tmp_path, password + "\n")))
    settings = SealerSettings()
    url = make_url(settings.resolved_database_url)
    assert url.password == password
    assert (url.username, url.host, url.port, url.database) == (
        "careledger",
        "postgres",
        5432,
        "sealer",
    )
    assert password not in repr(settings)
    assert settings.database_url == URL  # the setting itself carries no password


def test_without_a_password_file_the_url_is_used_as_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARELEDGER_DATABASE_URL", URL)
    assert SealerSettings().resolved_database_url == URL


@pytest.mark.parametrize(
    ("url", "text", "expected"),
    [
        ("postgresql+psycopg://u:inline@db/x", "s3cret", "without a password"),
        (None, "s3cret", "without a password"),
        (URL, "\n", "is empty"),
    ],
    ids=["password-twice", "no-url", "empty-file"],
)
def test_a_password_file_that_cannot_be_used_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str | None, text: str, expected: str
) -> None:
    if url is not None:
        monkeypatch.setenv("CARELEDGER_DATABASE_URL", url)
    monkeypatch.setenv("CARELEDGER_DATABASE_PASSWORD_FILE", str(secret(tmp_path, text)))
    with pytest.raises(ValidationError, match=expected) as raised:
        SealerSettings()
    assert "s3cret" not in configuration_problems(SealerSettings, raised.value)
    assert "inline" not in configuration_problems(SealerSettings, raised.value)


def test_sasl_password_comes_from_its_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CARELEDGER_KAFKA_SASL_PASSWORD_FILE", str(secret(tmp_path, "k-secret\n")))
    config = SealerSettings().kafka().client_config()
    assert config["sasl.password"] == "k-secret"


def test_sasl_password_given_twice_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CARELEDGER_KAFKA_SASL_PASSWORD", "one")
    monkeypatch.setenv("CARELEDGER_KAFKA_SASL_PASSWORD_FILE", str(secret(tmp_path, "two")))
    with pytest.raises(ValidationError, match="not both"):
        SealerSettings()


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://careledger@db/x", "postgres://db/x", "sqlite:///data/x.db"],
)
def test_database_urls_of_supported_databases_are_accepted(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("CARELEDGER_DATABASE_URL", url)
    assert SealerSettings().database_url == url


def test_environment_variables_name_what_pydantic_settings_reads() -> None:
    names = ValidatorSettings.environment_variables()
    assert names["KAFKA_BOOTSTRAP_SERVERS"] == "kafka_bootstrap_servers"
    assert names["CARELEDGER_KAFKA_BOOTSTRAP_SERVERS"] == "kafka_bootstrap_servers"
    assert names["CARELEDGER_VALIDATOR_NAME"] == "validator_name"
    assert names["CARELEDGER_DATABASE_PASSWORD_FILE"] == "database_password_file"  # noqa: S105
    assert "CARELEDGER_PSEUDONYM_KEY_FILE" not in names
    assert "CARELEDGER_PSEUDONYM_KEY_FILE" in IdentitySettings.environment_variables()
    assert "CARELEDGER_BLOCK_MAX_EVENTS" in SealerSettings.environment_variables()


def test_every_listed_variable_is_really_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # An impossible value in each variable must fail validation naming its field (or, for
    # a check across fields, the variable), or else arrive in the field: never be ignored.
    impossible = "~not-valid-anywhere~"
    for variable, field in SealerSettings.environment_variables().items():
        monkeypatch.setenv(variable, impossible)
        failure: ValidationError | None = None
        try:
            settings = SealerSettings()
        except ValidationError as exc:
            failure = exc
        if failure is not None:
            fields = {str(error["loc"][0]) for error in failure.errors() if error["loc"]}
            assert field in fields or variable in str(failure), variable
        else:
            value = getattr(settings, field)
            text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            assert text == impossible, variable
        monkeypatch.delenv(variable)


def test_problems_are_one_line_named_by_variable_without_secret_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARELEDGER_PORT", "-1")
    monkeypatch.setenv("CARELEDGER_DATABASE_URL", "mysql://u:hunter2@db/x")
    with pytest.raises(ValidationError) as raised:
        SealerSettings()
    line = configuration_problems(SealerSettings, raised.value)
    assert "\n" not in line
    assert "CARELEDGER_PORT='-1': Input should be greater than or equal to 0" in line
    assert "CARELEDGER_DATABASE_URL: unsupported database 'mysql'" in line
    assert "hunter2" not in line
