"""One HTTP session per account per worker process, rebuilt when the token changes."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import requests

from delivery.ilink.client import ILinkClient
from delivery.ilink.protocol import DEFAULT_CLIENT_VERSION, ClientVersion

__all__ = ["ClientPool", "settled_session"]


class ClientPool:
    """Keeps an :class:`ILinkClient` per account, keyed by its token version and base URL.

    A rotated token or a moved base URL gives a new client on a fresh
    ``requests.Session`` (the old one is closed), so no stale connection or header
    outlives a reconnect. ``session_factory`` is the seam tests use.
    """

    def __init__(
        self,
        *,
        timeout_seconds: float,
        client_version: ClientVersion = DEFAULT_CLIENT_VERSION,
        session_factory: Callable[[], requests.Session] = requests.Session,
    ) -> None:
        self._timeout_seconds = timeout_seconds
        self._client_version = client_version
        self._session_factory = session_factory
        self._clients: dict[str, tuple[int, str, ILinkClient]] = {}
        self._lock = threading.Lock()

    def get(self, *, account_id: str, token: str, token_version: int, base_url: str) -> ILinkClient:
        """The account's client for this token version and base URL."""
        with self._lock:
            known = self._clients.get(account_id)
            if known is not None and known[0] == token_version and known[1] == base_url:
                return known[2]
            if known is not None:
                known[2].close()
            client = ILinkClient(
                base_url=base_url,
                token=token,
                session=settled_session(self._session_factory(), base_url),
                client_version=self._client_version,
                timeout_seconds=self._timeout_seconds,
            )
            self._clients[account_id] = (token_version, base_url, client)
            return client

    def discard(self, account_id: str) -> None:
        """Close the account's session; the next ``get`` builds a fresh one."""
        with self._lock:
            known = self._clients.pop(account_id, None)
        if known is not None:
            known[2].close()

    def close(self) -> None:
        """Close every session."""
        with self._lock:
            for _, _, client in self._clients.values():
                client.close()
            self._clients.clear()


def settled_session(session: requests.Session, base_url: str) -> requests.Session:
    """``session`` with what the environment says of ``base_url`` read once: its proxy
    (``HTTPS_PROXY``, ``NO_PROXY`` ...) and CA bundle (``REQUESTS_CA_BUNDLE``,
    ``CURL_CA_BUNDLE``). requests otherwise reads the environment again on every call,
    which costs a send more than the call itself on a local network."""
    if not session.trust_env:
        return session
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and session.verify is True:
        session.verify = bundle
    session.trust_env = False
    return session
