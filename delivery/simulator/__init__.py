"""A simulated iLink Bot platform: a real HTTP server for tests, the demo and benchmarks.

The layout follows the layers:

- :mod:`~delivery.simulator.model`: the platform's state machine (no HTTP, injected clock)
- :mod:`~delivery.simulator.server`: the HTTP adapter, :class:`PlatformSimulator`
- :mod:`~delivery.simulator.routes` / :mod:`~delivery.simulator.control`: the
  ``/_sim/`` control API and its typed client
- :mod:`~delivery.simulator.endpoints`: the iLink endpoints, request to outcome
- :mod:`~delivery.simulator.faults`, :mod:`~delivery.simulator.qr`,
  :mod:`~delivery.simulator.limiter`, :mod:`~delivery.simulator.update_queue`,
  :mod:`~delivery.simulator.envelope`, :mod:`~delivery.simulator.registry`,
  :mod:`~delivery.simulator.requestlog`: one concept each

Example::

    from delivery.simulator import Fault, PlatformSimulator, SimulatorConfig, SimulatorControl

    with PlatformSimulator(config=SimulatorConfig(rate_limit_sends=5)) as sim:
        control = SimulatorControl(sim.base_url)
        control.register_account("bot-1", token="t-1")
        control.queue_fault(Fault.reset_after_delivery())
        ...  # run the client against sim.base_url
        assert control.received().counters.duplicates == 0
"""

from __future__ import annotations

from delivery.simulator.config import SimulatorConfig
from delivery.simulator.control import SimulatorControl, SimulatorControlError
from delivery.simulator.envelope import SendMessage
from delivery.simulator.faults import Fault, FaultKind
from delivery.simulator.model import PlatformModel
from delivery.simulator.qr import QrStatus
from delivery.simulator.records import (
    AccountReport,
    ClientIdentity,
    Counters,
    Delivered,
    QrReport,
    SeenRequest,
    Snapshot,
)
from delivery.simulator.server import PlatformSimulator, serve_forever
from delivery.simulator.update_queue import Injected

__all__ = [
    "AccountReport",
    "ClientIdentity",
    "Counters",
    "Delivered",
    "Fault",
    "FaultKind",
    "Injected",
    "PlatformModel",
    "PlatformSimulator",
    "QrReport",
    "QrStatus",
    "SeenRequest",
    "SendMessage",
    "SimulatorConfig",
    "SimulatorControl",
    "SimulatorControlError",
    "Snapshot",
    "serve_forever",
]
