"""The scriptable QR-login flow: which status each poll of a code answers.

Each issued code walks a list of statuses, one step per poll of
``get_qrcode_status``; the last step repeats forever. By default a code goes
``wait`` -> ``scaned`` -> ``confirmed``. :meth:`QrFlow.script` changes that for the
codes issued afterwards: the first ``expire_first`` codes go ``wait`` -> ``expired``
(the client must ask for a new code), the ones after follow ``steps``. Registering
the account a ``confirmed`` code hands out is the model's job, not this module's.

Example::

    flow = QrFlow()
    flow.script(steps=["wait", "scaned_but_redirect", "confirmed"], expire_first=1)
    first = flow.issue()
    flow.poll(first.qrcode, host="127.0.0.1:8000").status   # "wait"
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

__all__ = ["DEFAULT_STEPS", "EXPIRING_STEPS", "QrCode", "QrFlow", "QrStatus"]

QrStatus = Literal["wait", "scaned", "scaned_but_redirect", "expired", "confirmed"]
DEFAULT_STEPS: Final[tuple[QrStatus, ...]] = ("wait", "scaned", "confirmed")
EXPIRING_STEPS: Final[tuple[QrStatus, ...]] = ("wait", "expired")
_TERMINAL: Final = frozenset({"expired", "confirmed"})


@dataclass
class QrCode:
    """One issued code: its script, how far it got, and who polled it from where.

    ``hosts`` records the ``Host`` header of every poll, so a test can see that the
    client moved to ``redirect_host``. ``account_id`` is set once it is confirmed;
    ``user_id`` is the person who scanned it.
    """

    qrcode: str
    steps: tuple[QrStatus, ...]
    redirect_host: str | None
    position: int = 0
    hosts: list[str] = field(default_factory=list)
    account_id: str | None = None
    # The person who "scans"; a confirmed login names them as ilink_user_id.
    user_id: str = field(default_factory=lambda: f"{secrets.token_hex(6)}@im.wechat")

    @property
    def status(self) -> QrStatus:
        """The status the latest poll answered (the first step before any poll)."""
        return self.steps[min(max(self.position - 1, 0), len(self.steps) - 1)]


def _check_steps(steps: Sequence[str]) -> tuple[QrStatus, ...]:
    if not steps:
        raise ValueError("a QR script needs at least one step")
    checked: list[QrStatus] = []
    for index, step in enumerate(steps):
        if step not in get_args(QrStatus):
            raise ValueError(f"unknown QR status {step!r}")
        # Nothing follows expired or confirmed on the real platform either.
        if step in _TERMINAL and index != len(steps) - 1:
            raise ValueError(f"{step!r} must be the last step")
        checked.append(step)  # type: ignore[arg-type]  # checked against QrStatus above
    return tuple(checked)


class QrFlow:
    """Issued codes and the script for new ones. Not thread-safe: the model locks it."""

    def __init__(self) -> None:
        self.codes: dict[str, QrCode] = {}
        self._steps: tuple[QrStatus, ...] = DEFAULT_STEPS
        self._expire_remaining = 0
        self._redirect_host: str | None = None

    def script(
        self, *, steps: Sequence[str], expire_first: int = 0, redirect_host: str | None = None
    ) -> None:
        """Script the codes issued from now on.

        ``redirect_host`` is the ``host:port`` a ``scaned_but_redirect`` points to;
        ``None`` means the host the poll came in on (the same simulator).
        Raises ``ValueError`` for an unknown status or a step after a terminal one.
        """
        if isinstance(expire_first, bool) or not isinstance(expire_first, int):
            raise ValueError("expire_first must be a whole number")
        if expire_first < 0:
            raise ValueError("expire_first must be >= 0")
        self._steps = _check_steps(steps)
        self._expire_remaining = expire_first
        self._redirect_host = redirect_host

    def issue(self) -> QrCode:
        """A new code, following the script."""
        if self._expire_remaining > 0:
            self._expire_remaining -= 1
            steps = EXPIRING_STEPS
        else:
            steps = self._steps
        code = QrCode(
            qrcode=f"simqr-{secrets.token_hex(8)}",
            steps=steps,
            redirect_host=self._redirect_host,
        )
        self.codes[code.qrcode] = code
        return code

    def poll(self, qrcode: str, *, host: str) -> QrCode:
        """Advance ``qrcode`` one step; raises ``KeyError`` for a code never issued."""
        code = self.codes[qrcode]
        code.hosts.append(host)
        code.position = min(code.position + 1, len(code.steps))
        return code
