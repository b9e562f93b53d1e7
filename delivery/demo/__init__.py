"""``delivery demo``: the whole product on an embedded default, in about a minute.

A SQLite ledger, a real redis-server the demo starts itself, the platform
simulator (with a lockout and a session expiry), a send worker, beat, and a
burst like a morning of cron briefings; live progress, then a report.
"""

from delivery.demo.run import run_demo

__all__ = ["run_demo"]
