"""``python -m bench [NAME ...]``: run benchmarks by name (all by default), then the report.

With no name every benchmark runs, in the order of the report (about 45 minutes: ``accounts``
alone takes about 20). Each prints its figures and writes ``bench/out/<name>.json``,
stamped with the time and the load average before and after (other work on the
machine shows there). Afterwards ``BENCHMARKS.md`` and ``bench/burst.png`` are
rendered from whatever results ``bench/out/`` holds; ``report`` alone only renders.
SIGTERM is turned into ``KeyboardInterrupt``, so that every process and database
started is cleaned up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import signal
import sys
import time
from types import FrameType

from bench import BENCHMARKS
from bench.common import write_result

__all__ = ["main"]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_one(name: str, command: str) -> None:
    """Run ``bench.<name>.run()`` and write its stamped result."""
    # Imported late: the pipeline reads its settings on first use.
    module = importlib.import_module(f"bench.{name}")
    started, load_before = time.monotonic(), os.getloadavg()
    result = module.run()
    meta = {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "seconds": round(time.monotonic() - started, 1),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    path = write_result(name, {"meta": meta, **result})
    print(f"{name}: {meta['seconds']:.0f}s; wrote {path}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(BENCHMARKS)}, report")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - {*BENCHMARKS, "report"})
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}")
    names = [n for n in (args.names or BENCHMARKS) if n != "report"]
    command = " ".join(["python -m bench", *args.names])
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        for name in names:
            print(f"== {name}", flush=True)
            run_one(name, command)
    except KeyboardInterrupt:
        print("interrupted: everything started was stopped", file=sys.stderr)
        return 130
    from bench import report

    report.render()
    return 0


if __name__ == "__main__":
    sys.exit(main())
