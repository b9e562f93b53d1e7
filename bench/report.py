"""Render ``BENCHMARKS.md`` and ``bench/burst.png`` from the results in ``bench/out/``.

Run by ``python -m bench`` after the benchmarks, or alone with
``python -m bench report``. Each benchmark module renders its own section
(``TITLE`` and ``render(result)``; ``figures(result)`` draws its pictures, if any):
this only puts them in order. A benchmark without a result file keeps the section
the file had. ``bench/findings.md``, written by hand after reading a run, is
included as it stands.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

from bench import BENCHMARKS
from bench.common import BENCH_DIR, OUT_DIR, environment

__all__ = ["render"]

REPORT = BENCH_DIR.parent / "BENCHMARKS.md"
FINDINGS = BENCH_DIR / "findings.md"


def _load(name: str) -> dict[str, Any] | None:
    path = OUT_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _header(env: dict[str, str]) -> str:
    return f"""# Benchmarks

Figures from real processes on one machine: **{env["cores"]} cores** ({env["cpu"]}),
{env["memory"]} RAM, Linux {env["kernel"]}; Python {env["python"]}, Celery
{env["celery"]}, SQLAlchemy {env["sqlalchemy"]}, redis-server {env["redis"]} (a private one
per run), PostgreSQL {env["postgresql"]}, SQLite {env["sqlite"]}. Other work shared the
machine during the runs (see each section's load average), so read small differences as
noise.

**Reproduce**: from the repository root, in the project's virtualenv,

```bash
python -m bench              # everything (about 45 minutes), then this file and bench/burst.png
python -m bench burst        # or: cost, enqueue, recovery, readers, chunker, retention,
                             #     inbound, ledger_size, pace, accounts, scaling
python -m bench report       # re-render from bench/out/*.json only
```

Each benchmark starts its own redis-server on a free port (`delivery.devstack.LocalRedis`),
real Celery workers, the simulator, and temporary ledgers (a SQLite file under the
system's temporary directory, here on the same ext4 disk as PostgreSQL's data; a
`delivery_bench_*` PostgreSQL database on `BENCH_PG_DSN`, default
`postgresql://postgres@127.0.0.1:5432/postgres`), and stops or drops all of them when it
ends, also on Ctrl-C. Raw figures: `bench/out/<name>.json` (not committed).
"""


def _previous_sections() -> dict[str, str]:
    """The sections of the ``BENCHMARKS.md`` there is, by their heading."""
    if not REPORT.exists():
        return {}
    chunks = re.split(r"(?m)^(?=## )", REPORT.read_text())
    return {c.splitlines()[0][3:].strip(): c.rstrip() + "\n" for c in chunks if c.startswith("## ")}


def render() -> None:
    """Write ``BENCHMARKS.md`` (and each figure of a benchmark with a result).

    A benchmark without a result in ``bench/out/`` keeps the section the file had
    (the figures of its last run), so running one benchmark re-renders only it.
    """
    previous = _previous_sections()
    parts = [_header(environment())]
    drawn: list[Path] = []
    for name in BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        result = _load(name)
        if result is None:
            title = module.TITLE
            parts.append(previous.get(title) or f"## {title}\n\nNot run yet.\n")
            continue
        parts.append(module.render(result))
        if hasattr(module, "figures"):
            drawn += module.figures(result)
    if FINDINGS.exists():
        parts.append(FINDINGS.read_text())
    REPORT.write_text("\n".join(parts))
    print(
        f"report: wrote {REPORT.name}"
        + "".join(f" and {path.relative_to(REPORT.parent)}" for path in drawn)
    )
