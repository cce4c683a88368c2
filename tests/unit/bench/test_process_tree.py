"""The benches count a service with its child processes (the sealer's verify workers)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.bench.bench_memory import children_rss_kib
from tests.bench.bench_pipeline import descendants, tree_cpu_seconds

# A child that starts a grandchild burning CPU, then waits for it.
_TREE = """
import subprocess, sys
burn = "import time\\nend = time.process_time() + 1.0\\nwhile time.process_time() < end: pass\\n"
grandchild = subprocess.Popen([sys.executable, "-c", burn + "import time; time.sleep(30)"])
print(grandchild.pid, flush=True)
grandchild.wait()
"""


def test_descendants_cpu_and_rss_cover_children_and_grandchildren() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _TREE], stdout=subprocess.PIPE, text=True
    ) as child:
        _check_tree(child)
    # Gone processes count as nothing rather than failing the bench.
    assert descendants(child.pid) == []
    assert children_rss_kib(child.pid) == 0


def _check_tree(child: subprocess.Popen[str]) -> None:
    try:
        assert child.stdout is not None
        grandchild = int(child.stdout.readline())
        deadline = time.monotonic() + 20
        while tree_cpu_seconds(child.pid)[1] < 1.0:  # the grandchild's burn, seen from above
            assert time.monotonic() < deadline, "the grandchild's CPU never showed"
            time.sleep(0.05)
        assert set(descendants(os.getpid())) >= {child.pid, grandchild}
        assert descendants(child.pid) == [grandchild]
        own, below = tree_cpu_seconds(child.pid)
        # The child only started its grandchild (its own start-up, under coverage too, is a
        # fraction of the grandchild's second of burning).
        assert below >= 1.0
        assert own < below
        assert children_rss_kib(child.pid) > 0
    finally:
        for pid in descendants(child.pid):
            os.kill(pid, 9)
        child.wait(timeout=10)
