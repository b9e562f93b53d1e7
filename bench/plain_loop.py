"""``python -m bench.plain_loop URL TOKEN COUNT``: the floor a pipeline chunk is compared with.

One :class:`~delivery.ilink.client.ILinkClient` on one ``requests.Session`` sends the
first ``COUNT`` chunk texts of :func:`bench.cost.workload` to the simulator, one
after the other, each with a fresh ``client_id``: no ledger, no broker, no limiter.
It runs in its own process so that it does not share a GIL with the simulator,
just as a worker does not. Prints ``{"chunks": n, "seconds": s}`` as JSON.
"""

from __future__ import annotations

import json
import sys
import time
import uuid

import requests

from delivery.ilink.client import ILinkClient
from delivery.ilink.pool import settled_session

__all__ = ["main"]


def main() -> None:
    from bench.cost import workload

    base_url, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sends = [(b.to_user_id, text) for b in workload() for text in b.chunks][:count]
    # The HTTP session set up as the pipeline sets up its own (the environment read once)
    session = settled_session(requests.Session(), base_url)
    client = ILinkClient(base_url=base_url, token=token, session=session)
    started = time.perf_counter()
    for to_user_id, text in sends:
        reply = client.send_text(
            to_user_id=to_user_id,
            client_id=f"loop-{uuid.uuid4().hex}",
            text=text,
            context_token=None,
        )
        if reply.answer.ret not in (0, None):
            raise SystemExit(f"refused: {reply.answer}")
    seconds = time.perf_counter() - started
    client.close()
    print(json.dumps({"chunks": len(sends), "seconds": seconds}))


if __name__ == "__main__":
    main()
