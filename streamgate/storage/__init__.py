"""Storage plumbing shared by the components that keep state: API keys, the webhook outbox.

- :mod:`.plan`: database work as plans (generators of statements, no I/O) and the
  :class:`~.plan.Executor` seam that runs them.
- :mod:`.migrations`: the one migration runner (``schema_versions``, a row per
  component) and column types for a schema written once for both databases.
- :mod:`.sqlite`: the gateway's SQLite file (mode 0600, WAL, busy timeout, ``BEGIN
  IMMEDIATE`` writes) and an executor that runs plans in a worker thread.
- :mod:`.postgres`: a small pool of psycopg async connections that runs plans.

Nothing here knows a component's tables. :mod:`.postgres` imports psycopg; import it
only where PostgreSQL is configured.
"""

from streamgate.storage.migrations import migrate, render
from streamgate.storage.plan import Executor, Kind, Plan, Query, Result

__all__ = ["Executor", "Kind", "Plan", "Query", "Result", "migrate", "render"]
