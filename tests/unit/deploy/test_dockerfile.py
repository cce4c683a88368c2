"""deploy/Dockerfile, read by a small parser (no Docker engine here), and its health probe.

The image must: install only hashed, locked packages; end as a non-root user; carry no
secret (no ARG or ENV that looks like one, nothing copied from deploy/secrets or data/);
copy only what its .dockerignore lets through; and probe /healthz on the port the service's
own settings listen on.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from careledger.broker import free_port
from careledger.topology import default_services
from tests.unit.deploy.deployed import ROOT, SETTINGS

DOCKERFILE = ROOT / "deploy/Dockerfile"
SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|CREDENTIAL|PRIVATE", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD."""
        text = self.arguments
        if self.keyword == "HEALTHCHECK":
            text = text.split(" CMD ", 1)[1]
        parsed: list[str] = json.loads(text)
        return parsed

    def flags(self) -> dict[str, str]:
        return dict(
            word[2:].split("=", 1) for word in shlex.split(self.arguments) if word.startswith("--")
        )


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """Instructions grouped by stage (each FROM starts one); continuations joined, comments
    and parser directives dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[list[Instruction]] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        instruction = Instruction(keyword.upper(), " ".join(arguments.split()))
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, "an instruction before the first FROM"
        stages[-1].append(instruction)
    return stages


def stages() -> list[list[Instruction]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def final_stage() -> list[Instruction]:
    return stages()[-1]


def only(stage: list[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in stage if i.keyword == keyword]


def test_the_parser_joins_continuations_and_splits_stages() -> None:
    parsed = parse_dockerfile(
        "# syntax=docker/dockerfile:1\nFROM a AS one\nRUN x \\\n  # note\n  && y\n"
        "FROM b\nUSER 1:1\n"
    )
    assert [[i.keyword for i in stage] for stage in parsed] == [["FROM", "RUN"], ["FROM", "USER"]]
    assert parsed[0][1].arguments == "x && y"


def test_final_stage_runs_as_a_non_root_user() -> None:
    users = only(final_stage(), "USER")
    assert users, "the final stage never leaves root"
    user = users[-1].arguments.split(":")[0]
    assert user not in {"0", "root"}
    # nothing after the last USER switches back or runs as root
    after = final_stage()[final_stage().index(users[-1]) + 1 :]
    assert not [i for i in after if i.keyword in {"USER", "RUN"}]


def test_the_image_is_multi_stage_and_the_runtime_copies_from_the_build() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    copies = only(final_stage(), "COPY")
    assert any(i.flags().get("from") == "build" for i in copies)
    assert not only(final_stage(), "RUN") or all(
        "pip install" not in i.arguments for i in only(final_stage(), "RUN")
    ), "the runtime stage installs nothing itself"


def pip_installs() -> list[str]:
    return [
        i.arguments
        for stage in stages()
        for i in only(stage, "RUN")
        if re.search(r"\bpip install\b", i.arguments)
    ]


def test_every_pip_install_requires_hashes_from_the_runtime_lock() -> None:
    installs = pip_installs()
    assert installs
    copied = {
        i.arguments.split()[-1]: i.arguments.split()[-2]
        for stage in stages()
        for i in only(stage, "COPY")
    }
    for install in installs:
        words = shlex.split(install)
        assert "--require-hashes" in words, install
        lock = words[words.index("-r") + 1]
        assert copied[lock] == "deploy/requirements-runtime.lock"


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes) of a `uv pip compile --generate-hashes` file."""
    packages: dict[str, tuple[str, frozenset[str]]] = {}
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)(.*)$", line)
        if match:
            hashes = frozenset(re.findall(r"--hash=(sha256:[0-9a-f]{64})", match[3]))
            packages[normalized(match[1])] = (match[2], hashes)
    return packages


def test_the_runtime_lock_is_the_runtime_half_of_requirements_lock() -> None:
    runtime = locked(ROOT / "deploy/requirements-runtime.lock")
    full = locked(ROOT / "requirements.lock")
    assert runtime
    for name, pin in runtime.items():
        assert pin[1], f"{name} has no hash"
        assert full.get(name) == pin, f"{name}: the runtime lock and requirements.lock differ"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = normalized(re.split(r"[<>=\[; ]", requirement, maxsplit=1)[0])
        assert name in runtime, f"runtime dependency {name} is not in the image's lock"
    for tool in ("pytest", "mypy", "ruff", "kubernetes-validate"):
        assert tool not in runtime, f"{tool} (dev only) would be in the image"


def test_no_secret_is_baked_into_the_image() -> None:
    for stage in stages():
        for i in stage:
            if i.keyword in {"ARG", "ENV"}:
                names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)", i.arguments)
                for name in names:
                    assert not SECRET_NAME.search(name), f"{i.keyword} {name}"
            if i.keyword in {"COPY", "ADD"}:
                sources = [w for w in shlex.split(i.arguments) if not w.startswith("--")][:-1]
                for source in sources:
                    assert not source.startswith(("deploy/secrets", "data")), source
    assert not [i for stage in stages() for i in only(stage, "ARG")], "no build arguments"


def dockerignore_allows(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    allowed = True
    for raw in (ROOT / "deploy/Dockerfile.dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        if re.fullmatch(regex, path) or re.fullmatch(regex + "/.*", path):
            allowed = negated
    return allowed


def test_every_copied_source_exists_and_passes_the_dockerignore() -> None:
    for stage in stages():
        for i in only(stage, "COPY"):
            if "from" in i.flags():
                continue
            sources = [w for w in shlex.split(i.arguments) if not w.startswith("--")][:-1]
            for source in sources:
                assert (ROOT / source).exists(), source
                assert dockerignore_allows(source), f"{source} is excluded from the context"
    for private in ("deploy/secrets/postgres-password", "data/keys/admin.json", ".venv/bin/x"):
        assert not dockerignore_allows(private), private


def test_healthcheck_runs_the_probe_the_image_installs() -> None:
    checks = only(final_stage(), "HEALTHCHECK")
    assert len(checks) == 1
    check = checks[0]
    probe = check.exec_form()
    assert probe == ["careledger-healthcheck"]
    flags = check.flags()
    assert {"interval", "timeout", "retries", "start-period"} <= set(flags)
    installed = [i for i in only(final_stage(), "COPY") if i.arguments.endswith(probe[0])]
    assert installed
    assert "deploy/healthcheck.py" in installed[0].arguments
    env = " ".join(i.arguments for i in only(final_stage(), "ENV"))
    assert "PATH=/opt/careledger/bin:$PATH" in env


def test_entrypoint_runs_a_module_and_exposes_every_service_port() -> None:
    assert only(final_stage(), "ENTRYPOINT")[-1].exec_form() == ["python", "-m"]
    exposed = {int(p) for i in only(final_stage(), "EXPOSE") for p in i.arguments.split()}
    assert exposed == {spec.port for spec in default_services()}


# --- the probe itself ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def probe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", ROOT / "deploy/healthcheck.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("spec", default_services(validators=4), ids=lambda spec: spec.name)
@pytest.mark.parametrize("explicit", [None, "0", "9321"])
def test_the_probe_asks_the_port_the_settings_listen_on(
    probe: ModuleType, spec: Any, explicit: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = dict(spec.extra_env)
    if explicit is not None:
        environ["CARELEDGER_PORT"] = explicit
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    expected = SETTINGS[spec.module]().listen_port
    assert probe.service_port(environ, spec.module) == expected


def test_the_probe_reads_the_module_from_the_command_line(probe: ModuleType) -> None:
    argv = ["/opt/careledger/bin/python", "-m", "services.validator"]
    assert probe.service_module(argv) == "services.validator"
    with pytest.raises(probe.ProbeError):
        probe.service_module(["python", "-m", "careledger", "topics"])


class Answer(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def service() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    Answer.status = 200


def test_the_probe_passes_on_200_and_fails_otherwise(
    probe: ModuleType, service: ThreadingHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    port = service.server_address[1]
    argv = ["python", "-m", "services.sealer"]
    environ = {"CARELEDGER_PORT": str(port), "CARELEDGER_HOST": "0.0.0.0"}  # noqa: S104
    assert probe.main(environ, argv) == 0
    Answer.status = 503
    assert probe.main(environ, argv) == 1
    assert "answered 503" in capsys.readouterr().err
    closed = {"CARELEDGER_PORT": str(free_port())}
    assert probe.main(closed, argv) == 1
    assert "did not answer" in capsys.readouterr().err
