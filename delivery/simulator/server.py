"""A real HTTP server speaking the iLink protocol, over a :class:`PlatformModel`.

The server parses and writes bytes; every decision is the model's. It also does
the things only a socket can: hold a request (latency, a hang) while watching for
the client hanging up, and reset a connection with ``SO_LINGER 0`` so the client
sees a reset rather than a clean close.

Routes: the iLink endpoints under ``/ilink/bot/`` (see
:mod:`delivery.simulator.endpoints`) and the control API under ``/_sim/`` (see
:mod:`delivery.simulator.routes`). The control API drives everything, so a
simulator listens on a loopback address unless it is given a control token, which
every control call must then carry (:func:`delivery.validation.is_loopback`).

Example::

    with PlatformSimulator(config=SimulatorConfig(rate_limit_sends=5)) as sim:
        sim.model.register_account("bot-1", token="t-1")
        ...  # point the client at sim.base_url
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Final, Literal
from urllib.parse import parse_qsl, urlsplit

from delivery.simulator.config import SimulatorConfig
from delivery.simulator.endpoints import ENDPOINTS, handle_ilink
from delivery.simulator.envelope import bearer_token
from delivery.simulator.faults import SENDMESSAGE, endpoint_name
from delivery.simulator.model import PlatformModel
from delivery.simulator.replies import RET_REFUSED, Outcome, Reply, error_reply
from delivery.simulator.routes import (
    CONTROL_PREFIX,
    CONTROL_TOKEN_HEADER,
    control_permitted,
    control_refused,
    handle_control,
)
from delivery.validation import is_loopback

__all__ = ["PlatformSimulator", "serve_forever"]

logger = logging.getLogger(__name__)

ILINK_PREFIX: Final = "/ilink/bot/"
GETUPDATES: Final = "getupdates"
# How often a held request looks for a hang-up or a stop; short so stop() is quick.
_HOLD_SLICE_SECONDS: Final = 0.02
# An idle keep-alive connection is dropped after this; it only frees a thread.
_IDLE_CONNECTION_SECONDS: Final = 300.0
# Bodies beyond this are a client bug (a 2000-character text is ~8 KB at most).
_MAX_BODY_BYTES: Final = 1 << 20


def _refusal(status: int, errmsg: str) -> Reply:
    """An HTTP-level refusal in the platform's JSON shape."""
    return error_reply(ret=RET_REFUSED, errcode=RET_REFUSED, errmsg=errmsg, status=status)


class _Server(ThreadingHTTPServer):
    """The listening socket, the model, and the open connections to cut on stop."""

    daemon_threads = True  # a hanging request must never keep the process alive

    def __init__(
        self, address: tuple[str, int], model: PlatformModel, control_token: str | None
    ) -> None:
        super().__init__(address, _Handler)
        self.model = model
        self.control_token = control_token
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def cut_connections(self) -> None:
        """Wake every handler blocked on a kept-alive connection so its thread ends."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 so that clients keep connections alive as in production."""

    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = _IDLE_CONNECTION_SECONDS

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; with Nagle on, the body would wait for
        # the client's delayed ACK (~40 ms) on every kept-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.track(self.connection, open_=False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # -- dispatch ---------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        if body is None:
            return
        try:
            if url.path.startswith(CONTROL_PREFIX):
                presented = self.headers.get(CONTROL_TOKEN_HEADER)
                if control_permitted(
                    path=url.path, token=self.server.control_token, presented=presented
                ):
                    query = dict(parse_qsl(url.query))
                    reply = handle_control(
                        self.server.model, method=method, path=url.path, query=query, body=body
                    )
                else:
                    reply = control_refused()
                self._perform(Outcome(reply=reply))
            elif url.path.startswith(ILINK_PREFIX):
                self._ilink(method, url.path.removeprefix(ILINK_PREFIX), url.query, body)
            else:
                self._perform(Outcome(reply=_refusal(404, "no such path")))
        except OSError:
            # The client went away mid-answer (broken pipe, reset): nobody left to tell.
            self.close_connection = True
        except Exception:
            # A simulator bug must show up in the test that hit it, not hang the client.
            logger.exception("simulator failed on %s %s", method, self.path)
            self._perform(Outcome(reply=_refusal(500, "simulator bug")))

    def _read_body(self) -> bytes | None:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            if self.command == "POST":
                self.close_connection = True
                self._write(_refusal(411, "Content-Length required"))
                return None
            return b""
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY_BYTES:
            self.close_connection = True
            self._write(_refusal(400, "bad Content-Length"))
            return None
        return self.rfile.read(length)

    def _ilink(self, method: str, endpoint: str, query: str, body: bytes) -> None:
        model = self.server.model
        if method not in ENDPOINTS.get(endpoint, frozenset()):
            self._perform(Outcome(reply=_refusal(404, f"no {method} endpoint {endpoint}")))
            return
        model.note_request(endpoint_name(endpoint), uin=self.headers.get("X-WECHAT-UIN"))
        bound_host, bound_port = self.server.server_address[:2]
        host = self.headers.get("Host") or f"{bound_host!s}:{bound_port}"
        # In flight from the moment the request is read until its answer is written.
        token = bearer_token(self.headers)
        in_flight: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if endpoint == SENDMESSAGE:
            delay = model.arrival_delay()
            if delay:
                time.sleep(delay)  # on the way in: counted when it "arrives"
            in_flight = model.sending(token)
        elif endpoint == GETUPDATES:
            in_flight = model.polling(token)
        with in_flight:
            outcome = handle_ilink(
                model,
                method=method,
                endpoint=endpoint,
                query=dict(parse_qsl(query)),
                headers=self.headers,
                body=body,
                host=host,
            )
            self._perform(outcome)

    # -- output -----------------------------------------------------------------------

    def _perform(self, outcome: Outcome) -> None:
        reply = outcome.reply
        if outcome.delay_seconds > 0:
            held = self._hold(outcome.delay_seconds, ready=outcome.ready)
            if held is None:
                # The client hung up or the simulator is stopping: nobody to answer.
                self.close_connection = True
                return
            reply = held or reply
        if reply is None:
            self._reset()
        else:
            self._write(reply)

    def _hold(
        self, seconds: float, *, ready: Callable[[float], Reply | None] | None = None
    ) -> Reply | Literal[False] | None:
        """Wait ``seconds``, or until ``ready`` has an answer (a long poll), which is
        returned; ``False`` when the time is up, ``None`` as soon as the client hangs
        up or stop() begins."""
        deadline = time.monotonic() + seconds
        # A selector rather than select(): no FD_SETSIZE ceiling under benchmark load.
        with selectors.DefaultSelector() as selector:
            selector.register(self.connection, selectors.EVENT_READ)
            while (remaining := deadline - time.monotonic()) > 0:
                if self.server.stopping.is_set() or self._hung_up(selector):
                    return None
                wait = min(remaining, _HOLD_SLICE_SECONDS)
                if ready is None:
                    self.server.stopping.wait(wait)
                elif (answer := ready(wait)) is not None:
                    return answer
        if self.server.stopping.is_set():
            return None
        return (ready(0) if ready is not None else None) or False

    def _hung_up(self, selector: selectors.BaseSelector) -> bool:
        """Whether the client closed its end (bytes of a next request are no hang-up)."""
        if not selector.select(0):
            return False
        try:
            return not self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return True

    def _reset(self) -> None:
        """Close with RST: linger on, timeout 0, so the kernel drops the connection."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _write(self, reply: Reply) -> None:
        self.send_response(reply.status)
        if reply.content_type is not None:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply.body)


class PlatformSimulator:
    """The simulated platform, listening on ``host:port`` (``port=0`` picks a free one).

    The socket is bound at construction, so ``base_url`` is known before
    :meth:`start`. ``model`` is the state behind it, for direct control in-process;
    ``clock`` is the model's clock in seconds (inject one to compress time).
    :meth:`stop` never waits for requests still held by a hang or latency.
    ``control_token``, when given, is required of every ``/_sim/`` call (header
    ``X-Simulator-Token``).

    Raises:
        ValueError: ``host`` is not a loopback address and no ``control_token`` is
            given (anyone who reached it could drive the simulator), or the token
            is empty.
    """

    def __init__(
        self,
        *,
        config: SimulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        control_token: str | None = None,
    ) -> None:
        if control_token is None and not is_loopback(host):
            raise ValueError(
                f"the simulator on {host!r}, not a loopback address, needs a control token: "
                "anyone who reached its control API could reset it or read what it received"
            )
        if control_token is not None and not control_token.strip():
            raise ValueError("the control token must not be empty")
        self.model = PlatformModel(config=config, clock=clock)
        self._server = _Server((host, port), self.model, control_token)
        bound_host, bound_port = self._server.server_address[:2]
        self.base_url = f"http://{bound_host!s}:{bound_port}"
        self._thread: threading.Thread | None = None
        self._serving = False

    def start(self) -> PlatformSimulator:
        """Serve in a daemon thread; returns ``self`` for ``sim = PlatformSimulator().start()``."""
        if not self._serving:
            self._serving = True
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"simulator {self.base_url}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve(self) -> None:
        """Serve in the calling thread until :meth:`stop` (from another thread) or Ctrl-C."""
        self._serving = True
        self._server.serve_forever(poll_interval=0.5)

    def stop(self) -> None:
        """Stop serving, wake held requests and cut open connections. Idempotent."""
        self._server.stopping.set()
        if self._serving:
            # shutdown() waits for serve_forever to notice; it would wait forever if
            # nothing ever served, hence the flag.
            self._server.shutdown()
            self._serving = False
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._server.server_close()
        self._server.cut_connections()

    def __enter__(self) -> PlatformSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(
    *,
    host: str,
    port: int,
    config: SimulatorConfig,
    ready: Callable[[PlatformSimulator], None] | None = None,
    control_token: str | None = None,
) -> None:
    """Run a simulator in this thread until interrupted (the ``delivery simulator`` command).

    ``ready`` is called once the socket is bound, e.g. to print ``simulator.base_url``.
    ``KeyboardInterrupt`` propagates after the server is closed. ``host`` and
    ``control_token`` as for :class:`PlatformSimulator` (which raises ``ValueError``).
    """
    simulator = PlatformSimulator(config=config, host=host, port=port, control_token=control_token)
    logger.info("iLink simulator listening on %s", simulator.base_url)
    if ready is not None:
        ready(simulator)
    try:
        simulator.serve()
    finally:
        simulator.stop()
