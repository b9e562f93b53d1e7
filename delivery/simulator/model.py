"""The simulated platform's state machine, without HTTP: accounts, limits, deliveries.

:class:`PlatformModel` decides every answer and records everything it saw; the
server only moves bytes. It is thread-safe (one lock around all state) and reads
time only from the injected ``clock`` (seconds), so a test drives minutes of
lockout with a fake clock and no sleeping.

A ``sendmessage`` first meets the injected faults (the account's own, then the
global ones); the rules in :mod:`delivery.simulator.rules` judge what gets past them.

Example::

    now = [0.0]
    model = PlatformModel(config=SimulatorConfig(rate_limit_sends=1), clock=lambda: now[0])
    model.register_account("bot-1", token="t-1")
    model.sendmessage(token="t-1", send=SendMessage("u@im.wechat", "c-1", "hi", None))
"""

from __future__ import annotations

import functools
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from delivery.simulator.config import SimulatorConfig, apply_changes
from delivery.simulator.envelope import SendMessage
from delivery.simulator.faults import SENDMESSAGE, Fault, FaultQueue
from delivery.simulator.qr import DEFAULT_VERIFY_ATTEMPTS, QrFlow
from delivery.simulator.records import Counters, Delivered, SeenRequest, Snapshot
from delivery.simulator.registry import AccountRegistry
from delivery.simulator.replies import Outcome, Reply, bad_request, json_reply, session_expired
from delivery.simulator.requestlog import RequestLog
from delivery.simulator.rules import AccountState, judge_send, reply_for
from delivery.simulator.update_queue import Inbox, Injected

__all__ = ["PlatformModel"]


def _ok(**fields: Any) -> Reply:
    return json_reply({"ret": 0, **fields})


class PlatformModel:
    """The platform's state. Every public method is atomic under one lock.

    Control methods raise ``ValueError`` for nonsense and ``KeyError`` for an
    unknown account; the endpoint methods never raise for client mistakes, they
    answer them.
    """

    def __init__(
        self,
        *,
        config: SimulatorConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        # Wakes long polls held by getupdates: a message arrived, or a session ended.
        self._inbound_arrived = threading.Condition(self._lock)
        self._clock = clock
        self._initial_config = config or SimulatorConfig()
        self._clear(self._initial_config)

    def _clear(self, config: SimulatorConfig) -> None:
        self._config = config
        self._accounts = AccountRegistry()
        self._faults = FaultQueue()
        self._inbox = Inbox()
        self._qr = QrFlow()
        self._messages: dict[str, list[Delivered]] = {}
        self._accepted = 0
        self._duplicates = 0
        self._rejected: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._faults_fired: Counter[str] = Counter()
        self._log = RequestLog()

    # -- control --------------------------------------------------------------------

    @property
    def config(self) -> SimulatorConfig:
        """The config in force."""
        with self._lock:
            return self._config

    def configure(self, **changes: Any) -> SimulatorConfig:
        """Change config fields, e.g. ``configure(rate_limit_sends=3)``; returns the result."""
        with self._lock:
            self._config = apply_changes(self._config, changes)
            return self._config

    def reset(self, *, config: SimulatorConfig | None = None) -> None:
        """Forget everything; keep the config given at construction unless one is passed."""
        with self._lock:
            self._clear(config or self._initial_config)
            self._inbound_arrived.notify_all()

    def register_account(self, account_id: str, *, token: str) -> None:
        """Create an account whose requests carry ``Authorization: Bearer <token>``."""
        with self._lock:
            self._accounts.add(account_id, token=token)

    def set_token(self, account_id: str, *, token: str) -> None:
        """Give the account a new token: the old one answers ``-14`` from now on."""
        with self._lock:
            self._accounts.rotate(account_id, token=token)
            self._inbound_arrived.notify_all()

    def expire_session(self, account_id: str) -> None:
        """Expire the account's session now, as the platform does at its own whim."""
        with self._lock:
            self._accounts[account_id].expired = True
            self._inbound_arrived.notify_all()

    def lock_out(self, account_id: str, *, seconds: float) -> None:
        """Start a lockout of ``seconds`` now, as if an earlier burst had tripped the limit."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError(f"seconds must be a positive number, got {seconds!r}")
        with self._lock:
            limiter = self._accounts[account_id].limiter
            limiter.lockout_until = self._clock() + seconds
            limiter.refusals = 0

    def queue_fault(self, fault: Fault, *, count: int = 1, account_id: str | None = None) -> None:
        """The next ``count`` requests to ``fault.endpoint`` (of ``account_id``) get ``fault``."""
        with self._lock:
            if account_id is not None and account_id not in self._accounts:
                raise KeyError(account_id)
            self._faults.add(fault, count=count, account_id=account_id)

    def inbound(
        self, account_id: str, *, from_user_id: str, text: str, context_token: str | None = None
    ) -> Injected:
        """A person writes to the bot: their reply window reopens and their budget
        starts again; ``getupdates`` hands the message out. Returns its id and its
        (fresh, unless given) context token."""
        with self._lock:
            if account_id not in self._accounts:
                raise KeyError(account_id)
            self._accounts[account_id].readers.heard(from_user_id, now=self._clock())
            injected = self._inbox.add(
                account_id=account_id,
                from_user_id=from_user_id,
                text=text,
                context_token=context_token,
                now_ms=_wall_clock_ms(),
            )
            self._inbound_arrived.notify_all()
            return injected

    def inject_inbound(
        self, account_id: str, *, from_user_id: str, text: str, context_token: str | None = None
    ) -> str:
        """:meth:`inbound`, for callers that need only the context token."""
        return self.inbound(
            account_id, from_user_id=from_user_id, text=text, context_token=context_token
        ).context_token

    def resend_inbound(self, account_id: str, *, message_id: str) -> Injected:
        """The platform sends inbound message ``message_id`` again under a new id.

        Raises ``KeyError`` for an unknown account or message."""
        with self._lock:
            if account_id not in self._accounts:
                raise KeyError(account_id)
            injected = self._inbox.resend(
                account_id=account_id, message_id=message_id, now_ms=_wall_clock_ms()
            )
            self._inbound_arrived.notify_all()
            return injected

    def inject_raw_inbound(self, account_id: str, *, item: Any) -> None:
        """Queue ``item`` (any JSON value) in the account's ``getupdates`` as it is."""
        with self._lock:
            if account_id not in self._accounts:
                raise KeyError(account_id)
            self._inbox.add_raw(account_id=account_id, item=item)
            self._inbound_arrived.notify_all()

    def script_qr(
        self,
        *,
        steps: Sequence[str],
        expire_first: int = 0,
        redirect_host: str | None = None,
        verify_code: str | None = None,
        verify_attempts: int = DEFAULT_VERIFY_ATTEMPTS,
    ) -> None:
        """Script the QR codes issued from now on; see :class:`~delivery.simulator.qr.QrFlow`."""
        with self._lock:
            self._qr.script(
                steps=steps,
                expire_first=expire_first,
                redirect_host=redirect_host,
                verify_code=verify_code,
                verify_attempts=verify_attempts,
            )

    def account_for_token(self, token: str) -> str | None:
        """The account a token (current or old) belongs to, if any."""
        with self._lock:
            account = self._accounts.owner(token)
            return account.account_id if account else None

    # -- bookkeeping the server reports -----------------------------------------------

    def note_request(self, endpoint: str, *, uin: str | None = None) -> None:
        """Count a request to ``endpoint`` and whether its ``X-WECHAT-UIN`` was fresh."""
        with self._lock:
            self._log.count(endpoint, uin=uin)

    def note_seen(self, request: SeenRequest) -> None:
        """Record a well-formed request and the client identity it carried."""
        with self._lock:
            self._log.see(request)

    def note_bad_request(self, endpoint: str, what: str) -> Reply:
        """Record a malformed request and return its HTTP 400 answer."""
        with self._lock:
            self._log.refuse(endpoint, what)
            if endpoint == SENDMESSAGE:
                self._rejected["bad_request"] += 1
        return bad_request(what)

    @contextmanager
    def sending(self, token: str | None) -> Iterator[None]:
        """Hold a ``sendmessage`` of the token's account in flight for the ``with`` body."""
        with self._lock:
            account = self._accounts.owner(token)
            if account is not None:
                account.in_flight += 1
                account.max_in_flight = max(account.max_in_flight, account.in_flight)
        try:
            yield
        finally:
            if account is not None:
                with self._lock:
                    account.in_flight -= 1

    @contextmanager
    def polling(self, token: str | None) -> Iterator[None]:
        """Count a ``getupdates`` of the token's account, held in flight for the body."""
        with self._lock:
            account = self._accounts.owner(token)
            if account is not None:
                account.polls += 1
                account.polls_in_flight += 1
                account.max_polls_in_flight = max(
                    account.max_polls_in_flight, account.polls_in_flight
                )
        try:
            yield
        finally:
            if account is not None:
                with self._lock:
                    account.polls_in_flight -= 1

    # -- endpoints --------------------------------------------------------------------

    def arrival_delay(self) -> float:
        """How long this ``sendmessage`` spends on the way in (``send_jitter_seconds``)."""
        with self._lock:
            jitter = self._config.send_jitter_seconds
        return random.uniform(0.0, jitter) if jitter else 0.0

    def sendmessage(self, *, token: str, send: SendMessage) -> Outcome:
        """Judge one ``sendmessage``: faults first, then the rules of ``rules.judge_send``."""
        with self._lock:
            account = self._accounts.owner(token)
            fault = self._faults.take(
                endpoint=SENDMESSAGE, account_id=account.account_id if account else None
            )
            latency = self._config.send_latency_seconds
            if fault is None:
                return Outcome(reply=self._send(token, send), delay_seconds=latency)
            outcome = self._fire(fault, lambda: self._send(token, send), counts_as_send=True)
            return Outcome(reply=outcome.reply, delay_seconds=latency + outcome.delay_seconds)

    def getconfig(self, *, token: str) -> Outcome:
        """The cheap session check: a typing ticket, or ``-14``. Consumes nothing."""
        with self._lock:
            return self._serve("getconfig", token, lambda _: _ok(typing_ticket=_ticket()))

    def sendtyping(self, *, token: str) -> Outcome:
        """Accept a typing indicator (nothing is recorded but the request count)."""
        with self._lock:
            return self._serve("sendtyping", token, lambda _: _ok())

    def notify(self, endpoint: str, *, token: str) -> Outcome:
        """``msg/notifystart`` or ``msg/notifystop``: acknowledged, nothing else changes."""
        with self._lock:
            return self._serve(endpoint, token, lambda _: _ok())

    def getupdates(self, *, token: str, cursor: str) -> Outcome:
        """Acknowledge up to ``cursor`` and hand out what is left (see
        :mod:`~delivery.simulator.update_queue`). With nothing to hand out, the request
        is held until a message arrives or ``longpolling_timeout_ms`` passes."""

        def updates(account: AccountState) -> Reply:
            msgs, next_cursor = self._inbox.take(account.account_id, cursor=cursor)
            return self._updates_reply(msgs, next_cursor)

        with self._lock:
            account = self._accounts.owner(token)
            if self._faults.peek(endpoint="getupdates", account_id=_id_of(account)):
                return self._serve("getupdates", token, updates)
            if account is None or not account.accepts(token):
                return Outcome(reply=session_expired())
            reply = updates(account)
            if self._inbox.pending(account.account_id):
                return Outcome(reply=reply)
            wait = functools.partial(self._await_inbound, account, token, cursor)
            hold_seconds = self._config.longpolling_timeout_ms / 1000
            return Outcome(reply=reply, delay_seconds=hold_seconds, ready=wait)

    def _updates_reply(self, msgs: list[Any], cursor: str) -> Reply:
        return _ok(
            msgs=msgs,
            get_updates_buf=cursor,
            longpolling_timeout_ms=self._config.longpolling_timeout_ms,
        )

    def _await_inbound(
        self, account: AccountState, token: str, cursor: str, timeout_seconds: float
    ) -> Reply | None:
        """A held long poll: its answer once a message waits (or the session ended)
        within ``timeout_seconds``, else ``None``."""
        with self._inbound_arrived:
            self._inbound_arrived.wait_for(
                lambda: self._inbox.pending(account.account_id) > 0 or not account.accepts(token),
                timeout=timeout_seconds,
            )
            if not account.accepts(token):
                return session_expired()
            if not self._inbox.pending(account.account_id):
                return None
            msgs, next_cursor = self._inbox.take(account.account_id, cursor=cursor)
            return self._updates_reply(msgs, next_cursor)

    def get_bot_qrcode(
        self, *, scan_base_url: str, method: str = "GET", local_tokens: Sequence[str] = ()
    ) -> Outcome:
        """Issue a QR code; its ``qrcode_img_content`` is a page under ``scan_base_url``.

        ``local_tokens`` are the tokens a POST said its client holds (kept, not checked).
        """

        def issue() -> Reply:
            code = self._qr.issue(method=method, local_tokens=local_tokens)
            url = f"{scan_base_url.rstrip('/')}/_sim/qr/scan?qrcode={code.qrcode}"
            return _ok(qrcode=code.qrcode, qrcode_img_content=url)

        with self._lock:
            fault = self._faults.take(endpoint="get_bot_qrcode", account_id=None)
            return self._fire(fault, issue) if fault else Outcome(reply=issue())

    def get_qrcode_status(
        self, *, qrcode: str, host: str, base_url: str, verify_code: str | None = None
    ) -> Outcome:
        """Advance a code one scripted step; ``host`` is where the poll came in.

        ``verify_code`` is the number the client sent, if any. ``confirmed``
        registers a fresh account (once) and hands out its token with ``baseurl``
        set to ``base_url``.
        """

        def poll() -> Reply:
            try:
                code = self._qr.poll(qrcode, host=host, verify_code=verify_code)
            except KeyError:
                self._log.refuse("get_qrcode_status", "unknown qrcode")
                return bad_request("unknown qrcode")
            answer = code.answer(host=host)
            if code.status == "confirmed":
                if code.account_id is None:
                    code.account_id = self._accounts.add_fresh().account_id
                account = self._accounts[code.account_id]
                answer.update(
                    ilink_bot_id=account.account_id,
                    bot_token=account.token,
                    baseurl=base_url,
                    ilink_user_id=code.user_id,
                )
            return json_reply(answer)

        with self._lock:
            fault = self._faults.take(endpoint="get_qrcode_status", account_id=None)
            return self._fire(fault, poll) if fault else Outcome(reply=poll())

    # -- the rules (called with the lock held) ---------------------------------------------

    def _send(self, token: str, send: SendMessage) -> Reply:
        account = self._accounts.owner(token)
        now = self._clock()
        verdict = judge_send(account, token=token, send=send, now=now, config=self._config)
        message_id = account.message_ids.get(send.client_id) if account else None
        if verdict == "accepted" and account is not None and message_id is not None:
            self._accepted += 1
            self._messages.setdefault(send.to_user_id, []).append(
                Delivered(
                    client_id=send.client_id,
                    text=send.text,
                    account_id=account.account_id,
                    to_user_id=send.to_user_id,
                    context_token=send.context_token,
                    arrived_at=now,
                    message_id=message_id,
                )
            )
        elif verdict == "duplicate":
            self._duplicates += 1
        elif verdict == "silently_dropped":
            self._dropped[send.to_user_id] += 1
        else:
            self._rejected[verdict] += 1
        bare = (
            verdict == "rate_limited"
            and account is not None
            and account.limiter.bare(config=self._config)
        )
        return reply_for(verdict, config=self._config, message_id=message_id, bare=bare)

    def _serve(self, endpoint: str, token: str, answer: Callable[[AccountState], Reply]) -> Outcome:
        """An authenticated endpoint other than ``sendmessage``: fault, session, answer."""
        account = self._accounts.owner(token)

        def checked() -> Reply:
            if account is None or not account.accepts(token):
                return session_expired()
            return answer(account)

        fault = self._faults.take(
            endpoint=endpoint, account_id=account.account_id if account else None
        )
        return self._fire(fault, checked) if fault else Outcome(reply=checked())

    def _fire(
        self, fault: Fault, process: Callable[[], Reply], *, counts_as_send: bool = False
    ) -> Outcome:
        """Apply an injected fault; ``process`` is the normal handling, for faults that deliver."""
        self._faults_fired[fault.name] += 1
        if fault.kind == "reset_after_delivery":
            process()
            return Outcome(reply=None)
        if fault.kind == "hang" and fault.deliver:
            return Outcome(reply=process(), delay_seconds=fault.seconds)
        if counts_as_send:
            self._rejected[fault.name] += 1
        if fault.kind == "reset_before_delivery":
            return Outcome(reply=None)
        return Outcome(reply=fault.reply(), delay_seconds=fault.seconds)

    # -- inspection -------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """A copy of everything recorded, taken atomically."""
        with self._lock:
            now = self._clock()
            return Snapshot(
                now=now,
                messages={to: tuple(items) for to, items in self._messages.items()},
                counters=Counters(
                    accepted=self._accepted,
                    duplicates=self._duplicates,
                    rejected=dict(self._rejected),
                    faults_fired=dict(self._faults_fired),
                    requests=dict(self._log.requests),
                    repeated_uins=self._log.repeated_uins,
                    silently_dropped=dict(self._dropped),
                ),
                accounts={account.account_id: account.report(now) for account in self._accounts},
                qr_codes={
                    code.qrcode: code.report(self._accounts.owners(code.local_tokens))
                    for code in self._qr.codes.values()
                },
                bad_requests=tuple(self._log.bad_requests),
                seen=tuple(self._log.seen),
            )


def _ticket() -> str:
    return secrets.token_urlsafe(16)


def _id_of(account: AccountState | None) -> str | None:
    return account.account_id if account is not None else None


def _wall_clock_ms() -> int:
    # An inbound message is stamped with the time it was written (create_time_ms), on
    # the wall clock: a client reads it as a date, whatever clock drives the limits.
    return int(time.time() * 1000)
