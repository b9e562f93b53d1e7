"""The burst plot: chunks delivered over time per policy, with the platform's limit drawn in.

The upper panel shows each policy's accepted chunks (cumulative, from the
simulator's arrival times), the allowed rate as a dashed line from the origin,
and the burst's total; the lower panel shows each policy's lockouts as the
simulator reported them. Times are compressed seconds, with real minutes on the
top axis.

Example::

    draw_burst(json.loads(Path("bench/out/burst.json").read_text()), Path("bench/burst.png"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["draw_burst"]

COLORS = {"pipeline": "#1b9e77", "seed": "#d95f02", "seed + fix": "#7570b3"}


def draw_burst(result: dict[str, Any], path: Path) -> None:
    """Render the burst result (``bench/out/burst.json``) as a PNG at ``path``."""
    factor = float(result["factor"])
    limit = result["limit_real"]
    total = int(result["workload"]["chunks"])
    runs = result["runs"]
    end = max(max(r["drain_seconds"], *(b for _, b in r["lockouts"] or [(0, 0)])) for r in runs)
    end *= 1.03
    fig, (top, lanes) = plt.subplots(
        2, 1, figsize=(10, 6.2), sharex=True, gridspec_kw={"height_ratios": [4, 1.3]}
    )
    rate = limit["sends"] / (limit["window_seconds"] * factor)  # chunks per compressed second
    top.plot(
        [0, total / rate],
        [0, total],
        "--",
        color="0.45",
        lw=1.2,
        label=f"allowed rate ({limit['sends']} per {limit['window_seconds']:g} s real)",
    )
    top.axhline(total, color="0.7", lw=0.8, ls=":")
    top.text(
        end * 0.995, total + 2, f"{total} chunks in the burst", ha="right", fontsize=8, color="0.4"
    )
    for run in runs:
        times = [0.0, *run["accepted_at"]]
        counts = list(range(len(times)))
        times.append(run["drain_seconds"])
        counts.append(counts[-1])
        label = (
            f"{run['policy']}: {run['messages_delivered']}/{run['messages']} messages, "
            f"done at {run['drain_seconds']:.1f} s"
        )
        color = COLORS.get(run["policy"])
        top.step(times, counts, where="post", color=color, lw=2, label=label)
        top.plot([run["drain_seconds"]], [counts[-1]], "o", color=color, ms=5)
    top.set_ylabel("chunks accepted by the platform")
    top.set_ylim(0, total * 1.12)
    top.set_title(
        f"Burst of {result['workload']['messages']} briefings ({total} chunks, "
        f"{result['workload']['chats']} chats); clock compressed {round(1 / factor)}x",
        fontsize=11,
    )
    top.legend(loc="center right", fontsize=8)
    top.grid(alpha=0.3)
    real = top.secondary_xaxis(
        "top", functions=(lambda t: t / factor / 60, lambda m: m * 60 * factor)
    )
    real.set_xlabel("real-time equivalent (minutes)")
    for lane, run in enumerate(runs):
        spans = [(a, b - a) for a, b in run["lockouts"]]
        lanes.broken_barh(
            spans, (lane - 0.35, 0.7), color=COLORS.get(run["policy"], "0.5"), alpha=0.6
        )
        if not spans:
            lanes.text(end * 0.01, lane, "never locked out", va="center", fontsize=8)
    lanes.set_yticks(range(len(runs)), [r["policy"] for r in runs], fontsize=8)
    lanes.set_ylim(len(runs) - 0.5, -0.5)
    lanes.set_xlabel("seconds after the burst was handed over (compressed clock)")
    lanes.set_title(
        f"platform lockouts ({limit['lockout_seconds']:g} s real, "
        f"+{limit['lockout_extend_seconds']:g} s per send refused during one)",
        fontsize=9,
    )
    lanes.set_xlim(0, end)
    lanes.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
