"""The supervisor's restart policy, driven with a fake clock and real short-lived processes."""

from __future__ import annotations

import sys

from careledger.supervisor import BACKOFF_FIRST, BACKOFF_MAX, HEALTHY_UPTIME, Supervisor
from careledger.topology import ServiceSpec, default_services


def test_default_topology_matches_the_brief_ports() -> None:
    ports = {spec.name: spec.port for spec in default_services()}
    assert ports == {
        "identity": 8101,
        "records": 8102,
        "billing": 8103,
        "sealer": 8104,
        "validator-1": 8111,
        "validator-2": 8112,
        "validator-3": 8113,
    }
    shifted = {spec.name: spec.port for spec in default_services(port_offset=1000)}
    assert shifted["validator-3"] == 9113


def crashing_supervisor(announced: list[str]) -> Supervisor:
    # `python -m this` prints the Zen of Python and exits 0 at once: a service that "dies".
    spec = ServiceSpec("zen", "this", 0)
    lines: list[str] = []
    supervisor = Supervisor(
        [spec],
        env={"PATH": "/usr/bin", "PYTHONPATH": ":".join(sys.path)},
        sink=lambda name, line: lines.append(f"{name}:{line}"),
        announce=announced.append,
    )
    supervisor.start_all()
    assert supervisor.processes[0].wait(10)
    return supervisor


def test_a_dead_service_is_reported_then_restarted_with_doubling_backoff() -> None:
    announced: list[str] = []
    supervisor = crashing_supervisor(announced)
    managed = supervisor.processes[0]
    t0 = managed.started_at + 1
    supervisor.tend(now=t0)
    assert announced == [f"!! zen exited with code 0; restarting in {BACKOFF_FIRST:.0f} s"]
    supervisor.tend(now=t0 + BACKOFF_FIRST / 2)  # not yet
    assert managed.restarts == 0
    supervisor.tend(now=t0 + BACKOFF_FIRST)
    assert managed.restarts == 1
    assert announced[-1] == "!! restarting zen (restart #1)"
    assert managed.wait(10)
    supervisor.tend(now=managed.started_at + 1)
    assert announced[-1].endswith(f"restarting in {2 * BACKOFF_FIRST:.0f} s")
    supervisor.stop_all(timeout=5)


def test_backoff_is_capped_and_reset_after_healthy_uptime() -> None:
    announced: list[str] = []
    supervisor = crashing_supervisor(announced)
    managed = supervisor.processes[0]
    managed.backoff = BACKOFF_MAX
    supervisor.tend(now=managed.started_at + 1)
    assert managed.backoff == BACKOFF_MAX
    assert announced[-1].endswith(f"restarting in {BACKOFF_MAX:.0f} s")
    # A process that stayed up longer than HEALTHY_UPTIME earns its back-off back.
    managed.restart_at = None
    sleeper = Supervisor(
        [ServiceSpec("sleeper", "http.server", 0)],
        env={"PYTHONPATH": ":".join(sys.path)},
        sink=lambda _name, _line: None,
        announce=announced.append,
    )
    sleeper.processes[0].start()
    sleeper.processes[0].backoff = 8.0
    sleeper.tend(now=sleeper.processes[0].started_at + HEALTHY_UPTIME + 1)
    assert sleeper.processes[0].backoff == BACKOFF_FIRST
    assert sleeper.stop_all(timeout=5) == []
