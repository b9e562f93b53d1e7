"""Benchmarks of the delivery pipeline, run with ``python -m bench`` from the repository root.

Each benchmark starts the real processes it measures (a private redis-server, real
Celery workers, the platform simulator, temporary SQLite and PostgreSQL ledgers),
prints its figures, writes them to ``bench/out/<name>.json`` and stops everything it
started, also on Ctrl-C: its stack is :func:`delivery.devstack.stack.local_stack`, on a
clock from :mod:`delivery.devstack.clock` (:mod:`bench.common` adds the scratch
directory, the pipeline's workers and the ledger probe). Each module also renders its
own section of ``BENCHMARKS.md`` (``TITLE``, ``render(result)``, and ``figures(result)``
where it draws one); :mod:`bench.report` puts the sections in order.

- :mod:`bench.burst`: a morning burst against a minutes-long rate limit, on a
  compressed clock: this pipeline against the seed's policy and the seed's proposed fix.
- :mod:`bench.cost`: chunks per second through one worker with no limit, against a
  plain ``requests`` loop; where a chunk's time goes; peak memory.
- :mod:`bench.enqueue`: messages per second through ``enqueue`` and ``enqueue_many``.
- :mod:`bench.recovery`: a stub, not yet measured.
- :mod:`bench.chunker`: characters per second of the chunker on mixed text, before
  and after issue 12.
- :mod:`bench.retention`: messages pruned per second, and how long one batch's
  transaction lasts.
"""

# Every benchmark, in the order of its section of BENCHMARKS.md (and of a full run).
BENCHMARKS = (
    "burst",
    "cost",
    "recovery",
    "enqueue",
    "readers",
    "chunker",
    "retention",
    "inbound",
    "ledger_size",
    "pace",
    "accounts",
    "scaling",
)
