"""The PostgreSQL broker's statements: ``NOTIFY`` a batch, ``LISTEN`` on a channel.

They run on psycopg connections of their own (autocommit), not on SQLAlchemy's, so
this module needs psycopg (the ``postgres`` extra); only
:mod:`notice.brokers.pgnotify` imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql


def notify_many(conn: psycopg.Connection[Any], channel: str, payloads: Sequence[str]) -> None:
    """Send ``payloads`` on ``channel``, in order."""
    # one round trip for a whole fan-out, in array order; PostgreSQL folds identical
    # payloads of one transaction, and ours always differ
    conn.execute(
        "SELECT pg_notify(%s, p) FROM unnest(%s::text[]) AS t(p)", (channel, list(payloads))
    )


def listen(conn: psycopg.Connection[Any], channel: str) -> None:
    """Subscribe ``conn`` to ``channel`` (quoted as an identifier)."""
    # LISTEN takes effect when the statement returns (autocommit): ready to hear
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
