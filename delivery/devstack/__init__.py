"""A local stack of real processes: redis-server, workers, beat, the simulator.

The demo, the benchmarks and the tests start the same processes the same way.
"""

from delivery.devstack.processes import ManagedProcess, celery_argv
from delivery.devstack.redis_server import LocalRedis, free_port, redis_server_binary

__all__ = ["LocalRedis", "ManagedProcess", "celery_argv", "free_port", "redis_server_binary"]
