"""Backups: a logical, backend-neutral archive of a project's store, and its restore.

- :mod:`ghapplets.backup.archive`: the archive format (a gzip'd tar of ``manifest.json`` and
  one JSON Lines member per table), written and read with checksums;
- :mod:`ghapplets.backup.tables`: which tables a backup holds, and which it leaves out;
- :mod:`ghapplets.backup.snapshot`: a consistent online snapshot of either store;
- :mod:`ghapplets.backup.restore`: loading an archive into an empty store and queueing the
  unfinished work again.

A backup of the embedded backends restores into PostgreSQL and NATS and back. See
``docs/backup.md``.
"""
