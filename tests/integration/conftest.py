"""Set-up shared by the integration tests: an account in the ledger, the simulator.

``account`` is an account in the ledger whose base URL is a closed port, for tests
that never reach the platform; ``bot_sim`` is a simulator that knows the same account
and token, for tests that do. ``sim`` is a simulator that knows the accounts of
``sim_accounts`` (none unless a module overrides it) and behaves as ``sim_config`` says
(the defaults unless a module overrides it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import delivery
from delivery.simulator import PlatformSimulator, SimulatorConfig
from tests.conftest import Ledger, RedisInfo

ACCOUNT = "bot-1"
TOKEN = "tok-secret-0001"
CLOSED_PORT_URL = "http://127.0.0.1:9"  # nothing listens on port 9 (discard)


@pytest.fixture
def account(ledger: Ledger, redis_db: RedisInfo) -> str:
    """``ACCOUNT`` with ``TOKEN`` in the ledger (both backends), this session's Redis
    emptied; its base URL a closed port."""
    delivery.add_account(ACCOUNT, token=TOKEN, base_url=CLOSED_PORT_URL)
    return ACCOUNT


@pytest.fixture
def sim_config() -> SimulatorConfig:
    """How ``sim`` behaves: the defaults; a module overrides this fixture to change it."""
    return SimulatorConfig()


@pytest.fixture
def sim_accounts() -> dict[str, str]:
    """The accounts ``sim`` knows from the start, each with its token: none; a module
    overrides this fixture to change it."""
    return {}


@pytest.fixture
def sim(sim_config: SimulatorConfig, sim_accounts: dict[str, str]) -> Iterator[PlatformSimulator]:
    """The platform simulator, serving in this process on a free local port."""
    with PlatformSimulator(config=sim_config) as simulator:
        for account_id, token in sim_accounts.items():
            simulator.model.register_account(account_id, token=token)
        yield simulator


@pytest.fixture
def bot_sim(sim: PlatformSimulator) -> PlatformSimulator:
    """``sim``, knowing ``ACCOUNT`` with ``TOKEN`` (the ``account`` fixture's)."""
    sim.model.register_account(ACCOUNT, token=TOKEN)
    return sim
