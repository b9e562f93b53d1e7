"""``delivery hermes check``: does this Hermes see the plugin, is it enabled, and
which account does it send through?

Each finding is a line a user can act on; :func:`run_checks` asks Hermes itself
(its plugin manager, its config) when Hermes is importable, and delivery's ledger
for the account.

Example::

    for finding in run_checks():
        print("ok " if finding.ok else "NO ", finding.what, finding.detail)
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

import delivery
from delivery.errors import DeliveryError
from delivery.hermes.account_mirror import account_file, read_account
from delivery.hermes.bridge import get_bridge
from delivery.hermes.outbound import delivery_account
from delivery.hermes.plugin import PLUGIN_NAME

__all__ = ["ENTRY_POINT_GROUP", "Finding", "run_checks"]

ENTRY_POINT_GROUP = "hermes_agent.plugins"


@dataclass(frozen=True)
class Finding:
    """One answer: ``ok`` or not, what was asked, and what was found (or the fix)."""

    ok: bool
    what: str
    detail: str


def _hermes_version() -> str | None:
    try:
        return importlib.metadata.version("hermes-agent")
    except importlib.metadata.PackageNotFoundError:
        return None


def _entry_point() -> str | None:
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == PLUGIN_NAME:
            return entry.value
    return None


def _plugin_state() -> Finding:
    from hermes_cli.plugins import discover_plugins, get_plugin_manager

    discover_plugins()
    for info in get_plugin_manager().list_plugins():
        if info.get("name") == PLUGIN_NAME or info.get("key") == PLUGIN_NAME:
            if info.get("error"):
                return Finding(False, "plugin loads", f"Hermes says: {info['error']}")
            if info.get("enabled"):
                return Finding(True, "plugin enabled", "Hermes loads it (config.yaml)")
            return Finding(
                False,
                "plugin enabled",
                f"not enabled; run `hermes plugins enable {PLUGIN_NAME}` "
                f"(or add it to plugins.enabled in $HERMES_HOME/config.yaml)",
            )
    return Finding(False, "plugin seen", "Hermes's plugin manager does not list it")


def _account_findings() -> list[Finding]:
    bridge = get_bridge()
    hermes_id = bridge.account()
    if hermes_id is None:
        return [Finding(False, "Hermes account", "WEIXIN_ACCOUNT_ID is not set")]
    target = delivery_account(hermes_id)
    findings = [Finding(True, "sends through", f"delivery account {target} (Hermes: {hermes_id})")]
    path = account_file(bridge.home, hermes_id)
    stored = read_account(path)
    findings.append(
        Finding(
            stored is not None, "Hermes account file", str(path) + ("" if stored else " (none)")
        )
    )
    try:
        known = {a.id: a for a in delivery.list_accounts()}
    except DeliveryError as exc:
        return [*findings, Finding(False, "delivery ledger", str(exc))]
    account = known.get(target)
    if account is None:
        findings.append(Finding(False, "delivery account", f"{target} not in the ledger yet"))
    else:
        findings.append(
            Finding(
                not account.owns_inbound,
                "one poller",
                "Hermes polls getupdates (owns_inbound off)"
                if not account.owns_inbound
                else "owns_inbound is on: delivery would poll too; turn it off",
            )
        )
    return findings


def run_checks() -> list[Finding]:
    """Every finding, in the order a user would fix them."""
    version = _hermes_version()
    if version is None:
        return [Finding(False, "hermes-agent", "not installed in this environment")]
    findings = [Finding(True, "hermes-agent", version)]
    value = _entry_point()
    findings.append(
        Finding(
            value is not None,
            "entry point",
            f"{ENTRY_POINT_GROUP}: {PLUGIN_NAME} = {value}" if value else "missing: reinstall",
        )
    )
    findings.append(_plugin_state())
    return findings + _account_findings()
