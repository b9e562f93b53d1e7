"""``delivery hermes check``: whether Hermes Agent sends through delivery, and how."""

from __future__ import annotations

import click

__all__ = ["hermes"]


@click.group("hermes")
def hermes() -> None:
    """Hermes Agent's Weixin sends through delivery (the `delivery` Hermes plugin)."""


@click.command("check")
def check() -> None:
    """Does Hermes see the plugin, is it enabled, which account does it send through?
    Exit status 1 when something is missing."""
    from delivery.hermes.self_check import run_checks

    findings = run_checks()
    for finding in findings:
        mark = "ok" if finding.ok else "NO"
        click.echo(f"{mark:<3} {finding.what:<20} {finding.detail}")
    if not all(finding.ok for finding in findings):
        raise SystemExit(1)


hermes.add_command(check)
