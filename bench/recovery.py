"""Recovery: from a good token being stored to the first accepted chunk.

An account's session expires (the simulator answers ``-14``); a message waits,
parked, spending no budget. Then a good token appears, in one of the two ways
the product knows:

* **rotation** — an operator stores it in the ledger (``delivery account add
  ... --token``, here ``delivery.add_account``). The parked sends find it on
  their next look, every ``DELIVERY_SESSION_RECHECK_SECONDS``.
* **account store** — an agent that logged in again writes it to its file in
  ``DELIVERY_ACCOUNT_STORE_DIR``. Beat's session check (every
  ``DELIVERY_SESSION_CHECK_INTERVAL_SECONDS``) imports and validates it, then
  the parked sends find the session good on their next look.

Each path is timed over several trials, from the moment the token is stored to
the simulator's first accepted chunk, on the production defaults compressed 10
times (recheck 10 s -> 1 s, check interval 60 s -> 6 s). The expected times are
uniform over one recheck interval (rotation) and over one check interval plus
one recheck (store).
"""

from __future__ import annotations

import secrets
import statistics
import time
from typing import Any

import delivery
from bench.common import QUIET, bench_stack
from bench.markdown import stamp, table
from delivery.devstack import clock
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import Account
from delivery.sessions.store import FileAccountStore, StoredCredentials
from delivery.simulator import PlatformSimulator

__all__ = ["FACTOR", "TITLE", "TRIALS", "render", "run"]

FACTOR = 1 / 10
TRIALS = 5
ACCOUNT = "bench-bot"
_POLL_SECONDS = 0.005
_TIMEOUT_SECONDS = 60.0


def _wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + _TIMEOUT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"recovery: timed out waiting for {what}")
        time.sleep(_POLL_SECONDS)


def _state(database_url: str) -> str:
    with session_scope(engine_for(database_url), readonly=True) as session:
        row = session.get(Account, ACCOUNT)
        return row.session_state if row else "missing"


def _trial(
    *, simulator: PlatformSimulator, database_url: str, store: FileAccountStore, via: str, n: int
) -> float:
    """One expiry and one recovery; returns seconds from token stored to chunk accepted."""
    simulator.model.expire_session(ACCOUNT)
    delivery.enqueue(ACCOUNT, f"reader{n}@im.wechat", f"after recovery {via} {n}")
    _wait(lambda: _state(database_url) == "expired", "the expiry to be noticed")
    # Park for a moment past the first look, as a real expiry would.
    parked_until = time.monotonic() + 1.5
    _wait(lambda: time.monotonic() > parked_until, "parking")
    token = secrets.token_urlsafe(18)
    accepted = simulator.model.snapshot().counters.accepted
    simulator.model.set_token(ACCOUNT, token=token)
    stored = time.monotonic()
    if via == "rotation":
        delivery.add_account(ACCOUNT, token=token, base_url=simulator.base_url)
    else:
        store.save(ACCOUNT, StoredCredentials(token=token, base_url=simulator.base_url))
    _wait(lambda: simulator.model.snapshot().counters.accepted > accepted, "the first chunk")
    return time.monotonic() - stored


def run() -> dict[str, Any]:
    settings = clock.bench(FACTOR)
    recheck = float(settings["DELIVERY_SESSION_RECHECK_SECONDS"])
    interval = float(settings["DELIVERY_SESSION_CHECK_INTERVAL_SECONDS"])
    results: dict[str, Any] = {
        "factor": FACTOR,
        "trials": TRIALS,
        "recheck_seconds": recheck,
        "check_interval_seconds": interval,
        "paths": {},
    }
    with bench_stack("recovery", settings=settings) as stack:
        simulator, database_url = stack.simulator, stack.database_url
        store = FileAccountStore(stack.workdir / "accounts")
        stack.configure(account_store_dir=str(store.directory))
        stack.add_account(ACCOUNT, token=secrets.token_urlsafe(18))
        stack.start_worker(beat=True, log_name="worker", loglevel=QUIET)
        for via in ("rotation", "account store"):
            seconds = [
                _trial(simulator=simulator, database_url=database_url, store=store, via=via, n=n)
                for n in range(TRIALS)
            ]
            results["paths"][via] = {
                "seconds": [round(s, 3) for s in seconds],
                "median": round(statistics.median(seconds), 3),
                "max": round(max(seconds), 3),
            }
            print(
                f"recovery via {via}: median {statistics.median(seconds):.2f}s, "
                f"max {max(seconds):.2f}s over {TRIALS} trials (compressed {1 / FACTOR:g}x)",
                flush=True,
            )
    return results


TITLE = "3. Recovery"


def render(r: dict[str, Any] | None) -> str:
    """This benchmark's section of ``BENCHMARKS.md``, from its result."""
    if not r or "paths" not in r:
        return f"## {TITLE}\n\n**Not run.** `python -m bench recovery` measures it.\n"
    scale = round(1 / r["factor"])
    rows = [
        [
            via,
            f"{p['median']:.2f} s",
            f"{p['max']:.2f} s",
            f"{p['median'] * scale:.0f} s",
            ", ".join(f"{s:.2f}" for s in p["seconds"]),
        ]
        for via, p in r["paths"].items()
    ]
    return f"""## {TITLE}

{stamp(r)}

Time from a good token being stored to the platform's first accepted chunk, with
sends parked on an expired session. Clock compressed {scale}x: the parked sends
look again every {r["recheck_seconds"]:g} s (`DELIVERY_SESSION_RECHECK_SECONDS`,
{r["recheck_seconds"] * scale:g} s by default) and beat checks sessions every
{r["check_interval_seconds"]:g} s (`DELIVERY_SESSION_CHECK_INTERVAL_SECONDS`,
{r["check_interval_seconds"] * scale:g} s by default). *rotation*: an operator
stores the token in the ledger (`delivery account add`); *account store*: an agent
writes it to its file and beat's check imports it. {r["trials"]} trials each.

{table(["token stored by", "median", "max", "median, real clock", "trials (s)"], rows)}

Expected: within one recheck for a rotation, within one check interval plus one
recheck for the store.
"""
