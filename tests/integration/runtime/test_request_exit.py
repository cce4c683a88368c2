"""A component that fails for good stops its process with exit code 70, after a graceful stop."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from careledger.broker import free_port
from shared.runtime.server import EXIT_COMPONENT_FAILED

# A minimal service on the real skeleton: its one component fails on its own thread after
# start, as the sealer's loop does, and journals its stop.
SERVICE = textwrap.dedent(
    """
    import sys, threading
    from typing import ClassVar
    from shared.runtime.app import create_app
    from shared.runtime.metrics import ServiceMetrics
    from shared.runtime.server import request_exit, run_service
    from shared.runtime.settings import ServiceSettings

    class DemoSettings(ServiceSettings):
        service_name: ClassVar[str] = "demo"
        default_port: ClassVar[int] = 0

    class Failing:
        name = "loop"
        def start(self):
            threading.Timer(0.3, request_exit, args=["the loop failed"]).start()
        def stop(self):
            print("stopped the loop", flush=True)
        def check(self):
            pass

    def build(settings):
        metrics = ServiceMetrics(service="demo", instance="demo", version="0")
        return create_app(service="demo", version="0", components=[Failing()],
                          metrics=metrics, identity={"did": "did:key:z6Mkdemo"})

    run_service(DemoSettings, build)
    """
)


def test_request_exit_stops_gracefully_with_exit_code_70(tmp_path: Path) -> None:
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    done = subprocess.run(
        [sys.executable, str(script)],
        check=False,
        env={"CARELEDGER_PORT": str(free_port()), "CARELEDGER_LOG_FORMAT": "text", "PATH": ""},
        cwd=Path(__file__).parents[3],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == EXIT_COMPONENT_FAILED, done.stderr
    assert "stopped the loop" in done.stdout  # the lifespan stopped the components first
    assert "the loop failed" in done.stderr
