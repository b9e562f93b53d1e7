"""The scriptable QR-login flow: which status each poll of a code answers.

Each issued code walks a list of statuses, one step per poll of
``get_qrcode_status``; the last step repeats forever. By default a code goes
``wait`` -> ``scaned`` -> ``confirmed``. :meth:`QrFlow.script` changes that for the
codes issued afterwards: the first ``expire_first`` codes go ``wait`` -> ``expired``
(the client must ask for a new code), the ones after follow ``steps``. Registering
the account a ``confirmed`` code hands out is the model's job, not this module's.

A ``need_verifycode`` step holds the code until a poll carries the number the
phone shows (``verify_code``): a poll without one, or with a wrong one, answers
``need_verifycode`` again, and the ``verify_attempts``-th wrong number answers
``verify_code_blocked`` for good. ``expired``, ``confirmed``,
``verify_code_blocked`` and ``binded_redirect`` end a script.

Example::

    flow = QrFlow()
    flow.script(steps=["wait", "need_verifycode", "scaned", "confirmed"], verify_code="42")
    first = flow.issue()
    flow.poll(first.qrcode, host="127.0.0.1:8000").status                       # "wait"
    flow.poll(first.qrcode, host="127.0.0.1:8000").status                       # "need_verifycode"
    flow.poll(first.qrcode, host="127.0.0.1:8000", verify_code="42").status     # "scaned"
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

from delivery.simulator.records import QrReport

__all__ = [
    "DEFAULT_STEPS",
    "DEFAULT_VERIFY_ATTEMPTS",
    "EXPIRING_STEPS",
    "QrCode",
    "QrFlow",
    "QrStatus",
]

QrStatus = Literal[
    "wait",
    "scaned",
    "need_verifycode",
    "verify_code_blocked",
    "scaned_but_redirect",
    "binded_redirect",
    "expired",
    "confirmed",
]
DEFAULT_STEPS: Final[tuple[QrStatus, ...]] = ("wait", "scaned", "confirmed")
EXPIRING_STEPS: Final[tuple[QrStatus, ...]] = ("wait", "expired")
# Wrong numbers a code takes before it is blocked (the platform's own count is unknown).
DEFAULT_VERIFY_ATTEMPTS: Final = 3
_TERMINAL: Final = frozenset({"expired", "confirmed", "verify_code_blocked", "binded_redirect"})
_VERIFY: Final = "need_verifycode"


def _random_verify_code() -> str:
    return f"{secrets.randbelow(100):02d}"  # the two-digit number a phone shows


@dataclass
class QrCode:
    """One issued code: its script, how far it got, and who polled it from where.

    ``hosts`` records the ``Host`` header of every poll, so a test can see that the
    client moved to ``redirect_host``. ``account_id`` is set once it is confirmed;
    ``user_id`` is the person who scanned it. ``method`` and ``local_tokens`` say
    how it was asked for (the tokens are secrets: the snapshot reports their owners).
    """

    qrcode: str
    steps: tuple[QrStatus, ...]
    redirect_host: str | None
    verify_code: str
    verify_attempts: int
    method: str = "GET"
    local_tokens: tuple[str, ...] = field(default=(), repr=False)
    position: int = 0
    wrong_codes: int = 0
    hosts: list[str] = field(default_factory=list)
    account_id: str | None = None
    # The person who "scans"; a confirmed login names them as ilink_user_id.
    user_id: str = field(default_factory=lambda: f"{secrets.token_hex(6)}@im.wechat")

    @property
    def status(self) -> QrStatus:
        """The status the latest poll answered (the first step before any poll)."""
        if self.wrong_codes >= self.verify_attempts:
            return "verify_code_blocked"
        return self.steps[min(max(self.position - 1, 0), len(self.steps) - 1)]

    def answer(self, *, host: str) -> dict[str, Any]:
        """The poll's answer; a ``confirmed`` one still lacks the login (the model adds it).

        ``host`` is where the poll came in: a redirect without a scripted host points there.
        """
        answer: dict[str, Any] = {"ret": 0, "status": self.status}
        if self.status == "scaned_but_redirect":
            answer["redirect_host"] = self.redirect_host or host
        return answer

    def report(self, local_token_accounts: tuple[str, ...]) -> QrReport:
        """The code as the snapshot shows it; the model names the local tokens' accounts."""
        return QrReport(
            qrcode=self.qrcode,
            status=self.status,
            hosts=tuple(self.hosts),
            account_id=self.account_id,
            method=self.method,
            local_tokens=len(self.local_tokens),
            local_token_accounts=local_token_accounts,
            verify_code=self.verify_code if _VERIFY in self.steps else None,
            wrong_codes=self.wrong_codes,
        )


def _check_steps(steps: Sequence[str]) -> tuple[QrStatus, ...]:
    if not steps:
        raise ValueError("a QR script needs at least one step")
    checked: list[QrStatus] = []
    for index, step in enumerate(steps):
        if step not in get_args(QrStatus):
            raise ValueError(f"unknown QR status {step!r}")
        last = index == len(steps) - 1
        # Nothing follows a terminal status on the real platform either.
        if step in _TERMINAL and not last:
            raise ValueError(f"{step!r} must be the last step")
        if step == _VERIFY and last:
            raise ValueError(f"{step!r} must be followed by the step a right number leads to")
        checked.append(step)  # type: ignore[arg-type]  # checked against QrStatus above
    return tuple(checked)


def _whole(name: str, value: object, *, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be a whole number >= {least}")
    return value


class QrFlow:
    """Issued codes and the script for new ones. Not thread-safe: the model locks it."""

    def __init__(self) -> None:
        self.codes: dict[str, QrCode] = {}
        self._steps: tuple[QrStatus, ...] = DEFAULT_STEPS
        self._expire_remaining = 0
        self._redirect_host: str | None = None
        self._verify_code: str | None = None
        self._verify_attempts = DEFAULT_VERIFY_ATTEMPTS

    def script(
        self,
        *,
        steps: Sequence[str],
        expire_first: int = 0,
        redirect_host: str | None = None,
        verify_code: str | None = None,
        verify_attempts: int = DEFAULT_VERIFY_ATTEMPTS,
    ) -> None:
        """Script the codes issued from now on.

        ``redirect_host`` is the ``host:port`` a ``scaned_but_redirect`` points to;
        ``None`` means the host the poll came in on (the same simulator).
        ``verify_code`` is the number a ``need_verifycode`` step waits for (``None``:
        a random two-digit one per code, shown in the snapshot); ``verify_attempts``
        wrong numbers block the code.
        Raises ``ValueError`` for an unknown status or a step after a terminal one.
        """
        _whole("expire_first", expire_first, least=0)
        _whole("verify_attempts", verify_attempts, least=1)
        if verify_code is not None and (not isinstance(verify_code, str) or not verify_code):
            raise ValueError("verify_code must be a non-empty string or null")
        self._steps = _check_steps(steps)
        self._expire_remaining = expire_first
        self._redirect_host = redirect_host
        self._verify_code = verify_code
        self._verify_attempts = verify_attempts

    def issue(self, *, method: str = "GET", local_tokens: Sequence[str] = ()) -> QrCode:
        """A new code, following the script; ``method`` and ``local_tokens`` are kept."""
        if self._expire_remaining > 0:
            self._expire_remaining -= 1
            steps = EXPIRING_STEPS
        else:
            steps = self._steps
        code = QrCode(
            qrcode=f"simqr-{secrets.token_hex(8)}",
            steps=steps,
            redirect_host=self._redirect_host,
            verify_code=self._verify_code or _random_verify_code(),
            verify_attempts=self._verify_attempts,
            method=method,
            local_tokens=tuple(local_tokens),
        )
        self.codes[code.qrcode] = code
        return code

    def poll(self, qrcode: str, *, host: str, verify_code: str | None = None) -> QrCode:
        """Advance ``qrcode`` one step; raises ``KeyError`` for a code never issued.

        A code that answered ``need_verifycode`` moves on only with the right
        ``verify_code``; a wrong one counts towards the block.
        """
        code = self.codes[qrcode]
        code.hosts.append(host)
        if code.position > 0 and code.status == _VERIFY:
            if verify_code is None:
                return code
            if verify_code != code.verify_code:
                code.wrong_codes += 1
                return code
        code.position = min(code.position + 1, len(code.steps))
        return code
