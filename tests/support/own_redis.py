"""A redis-server owned by one test: it may be flushed, stopped and started again."""

from delivery.devstack import LocalRedis as OwnRedis

__all__ = ["OwnRedis"]
