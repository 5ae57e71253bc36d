"""What a transaction changed that others must hear of once it commits.

- record.py: `Changes`, which services record into as they write, carried by the session
  with its transaction (savepoints included: `nested`)
- apply.py:  `apply_changes`, the one place that turns a committed `Changes` into
  generation bumps, live progress notices and pause announcements
"""

from app.changes.record import Changes, Paused, changes_of, committed_changes, nested

__all__ = ["Changes", "Paused", "changes_of", "committed_changes", "nested"]
