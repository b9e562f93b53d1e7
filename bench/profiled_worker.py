"""``python -m bench.profiled_worker OUT.json -A delivery worker ...``: Celery, sampled.

A daemon thread looks at the main thread's stack about every millisecond
(``sys._current_frames``) and weighs each sample twice: by the wall-clock time and
by the main thread's CPU time (its ``pthread_getcpuclockid`` clock) since the
previous sample. While the main thread holds the GIL the sampler only gets to
look every switch interval (5 ms); the weights make up for that. At exit each
distinct stack is named once with :func:`bench.profile_split.category` and the
samples are written to ``OUT.json``, with the heaviest stacks kept whole and the
time and first words of every SQL statement and commit (SQLAlchemy engine events). Run the
worker with ``--pool solo`` so that tasks run in the sampled thread; a SIGTERM is
Celery's warm shutdown, after which the file is written.

Cost: one walk of the stack per sample; the worker ran about 4% slower with it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

from bench.profile_split import Sample, category, in_task, label, site

__all__ = ["StackSampler", "StatementLog", "main"]

SAMPLE_INTERVAL_SECONDS = 0.001
STACKS_KEPT = 60  # the heaviest stacks are kept whole, for a reader to look into
STATEMENT_CHARS = 60  # enough of a statement to tell which one it is


class StackSampler(threading.Thread):
    """Samples one thread's stack until stopped; stacks are named only at the end."""

    def __init__(self, thread_id: int) -> None:
        super().__init__(name="stack sampler", daemon=True)
        self._thread_id = thread_id
        self._cpu_clock = time.pthread_getcpuclockid(thread_id)
        self._halt = threading.Event()
        self._stacks: dict[tuple[CodeType, ...], int] = {}
        # (time.monotonic(), wall seconds, CPU seconds, stack number)
        self._rows: list[tuple[float, float, float, int]] = []

    def run(self) -> None:
        last, last_cpu = time.monotonic(), time.clock_gettime(self._cpu_clock)
        while not self._halt.wait(SAMPLE_INTERVAL_SECONDS):
            frame = sys._current_frames().get(self._thread_id)
            now, cpu = time.monotonic(), time.clock_gettime(self._cpu_clock)
            if frame is not None:
                codes = []
                current: FrameType | None = frame
                while current is not None:
                    codes.append(current.f_code)
                    current = current.f_back
                number = self._stacks.setdefault(tuple(codes), len(self._stacks))
                self._rows.append((now, now - last, cpu - last_cpu, number))
            last, last_cpu = now, cpu

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def samples(self) -> list[Sample]:
        """Every sample, its stack named."""
        named: dict[int, tuple[str, bool, str, str]] = {}
        for codes, number in self._stacks.items():
            stack = [(code.co_filename, code.co_name) for code in reversed(codes)]
            named[number] = (category(stack), in_task(stack), label(stack[-1]), site(stack))
        return [Sample(at, wall, cpu, *named[n]) for at, wall, cpu, n in self._rows]

    def heaviest_stacks(self, count: int) -> list[tuple[float, list[str]]]:
        """The ``count`` stacks with the most wall time (seconds), outermost frame first."""
        weights: dict[int, float] = {}
        for _at, wall, _cpu, number in self._rows:
            weights[number] = weights.get(number, 0.0) + wall
        codes_of = {number: codes for codes, number in self._stacks.items()}
        top = sorted(weights.items(), key=lambda item: -item[1])[:count]
        return [
            (weight, [label((c.co_filename, c.co_name)) for c in reversed(codes_of[number])])
            for number, weight in top
        ]


class StatementLog:
    """Every SQL statement and commit of every engine in this process, with its time."""

    def __init__(self) -> None:
        self.statements: list[tuple[float, str]] = []  # (time.monotonic(), its first words)
        self.commits: list[float] = []
        self.task_runs: list[float] = []  # when a send task started a run

    def install(self) -> None:
        from celery.signals import task_prerun
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", self._statement)
        event.listen(Engine, "commit", self._commit)
        task_prerun.connect(self._task_run, weak=False)

    def _task_run(self, *args: Any, **kwargs: Any) -> None:
        task = kwargs.get("task")
        if getattr(task, "name", "") == "delivery.send_chunk":
            self.task_runs.append(time.monotonic())

    def _statement(self, *args: Any) -> None:
        statement = str(args[2])
        self.statements.append((time.monotonic(), " ".join(statement.split())[:STATEMENT_CHARS]))

    def _commit(self, *args: Any) -> None:
        self.commits.append(time.monotonic())


def main() -> None:
    from celery.__main__ import main as celery_main

    out, args = Path(sys.argv[1]), sys.argv[2:]
    main_id = threading.main_thread().ident
    assert main_id is not None
    statements = StatementLog()
    statements.install()
    sampler = StackSampler(main_id)
    sampler.start()
    try:
        sys.argv = ["celery", *args]
        celery_main()
    finally:
        sampler.stop()
        result = {
            "samples": sampler.samples(),
            "heaviest_stacks": sampler.heaviest_stacks(STACKS_KEPT),
            "statements": statements.statements,
            "commits": statements.commits,
            "task_runs": statements.task_runs,
        }
        out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
