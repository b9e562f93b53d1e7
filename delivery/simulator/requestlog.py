"""What the simulator noted of the requests themselves, apart from what they asked for.

Counts per endpoint, reused ``X-WECHAT-UIN`` values, the latest malformed requests
(with the reason each was refused) and the latest well-formed ones with the
client identity they carried. Bounded, so a simulator can run for days. Not
thread-safe: the model's lock guards it.

Example::

    log = RequestLog()
    log.count("sendmessage", uin="MTIz")
    log.see(SeenRequest("POST", "sendmessage", ClientIdentity(client_version="132105")))
    log.seen[-1].client.client_version      # '132105'
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Final

from delivery.simulator.records import SeenRequest

__all__ = ["RequestLog"]

# Enough to notice a client that reuses its UIN, small enough to stay cheap forever.
_UIN_MEMORY: Final = 4096
# Kept for diagnosis in the snapshot; older ones are dropped.
_BAD_REQUEST_MEMORY: Final = 50
# Enough for a test to see every request it made; older ones are dropped.
_SEEN_MEMORY: Final = 200


class RequestLog:
    """Request counts, UIN reuse, and the latest bad and well-formed requests."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.repeated_uins = 0
        self.bad_requests: deque[str] = deque(maxlen=_BAD_REQUEST_MEMORY)
        self.seen: deque[SeenRequest] = deque(maxlen=_SEEN_MEMORY)
        self._recent_uins: deque[str] = deque(maxlen=_UIN_MEMORY)

    def count(self, endpoint: str, *, uin: str | None) -> None:
        """Count a request to ``endpoint`` and whether its ``X-WECHAT-UIN`` was fresh."""
        self.requests[endpoint] += 1
        if uin is not None:
            if uin in self._recent_uins:
                self.repeated_uins += 1
            self._recent_uins.append(uin)

    def refuse(self, endpoint: str, what: str) -> None:
        """Note a malformed request and why it was refused."""
        self.bad_requests.append(f"{endpoint}: {what}")

    def see(self, request: SeenRequest) -> None:
        """Note a request that passed the checks, with who sent it."""
        self.seen.append(request)
