"""The durable outbox: points, heart rate and sampler state on disk until the server has them.

- ``outbox``: :class:`~tracker.storage.outbox.Outbox`, what the engine uses: staging, the group
  commit, the queries the uplink asks (``pending``, ``confirm`` ...), memory mode, pruning.
- ``records``: ``ActivityRecord`` (the per-activity summary it hands out) and ``SamplerState``.
- ``queues``: one activity's staged and pending points (private to the outbox).
- ``memory_mode``: running from memory when the disk fails, and when to try it again.
- ``db``: the SQLite side, run in the outbox's worker thread; ``read_stored`` for ``export``.
- ``schema`` (file, tables, connection, transactions), ``rows`` (rows ↔ values, written once),
  ``pruning``, ``failures`` (what an error means), ``files`` (0700 dir, 0600 files).
"""
