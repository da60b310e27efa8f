"""Real PostgreSQL connections terminated under a client (`pg_terminate_backend`), between its
operations or in the middle of one, at a statement or a commit the test picks."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url


class ConnectionKiller:
    """Terminates server connections to one database from an admin connection of its own."""

    def __init__(self, url: str):
        u = make_url(url)
        self.database = u.database
        self.admin = create_engine(
            u.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
        )
        self.killed = 0

    def dispose(self) -> None:
        self.admin.dispose()

    def terminate_all(self) -> int:
        """Every other connection to the database: what a failover or a restart does."""
        with self.admin.connect() as conn:
            pids = (
                conn.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = :db "
                        "AND pid <> pg_backend_pid()"
                    ),
                    {"db": self.database},
                )
                .scalars()
                .all()
            )
        for pid in pids:
            self.terminate(pid)
        return len(pids)

    def terminate(self, pid: int) -> None:
        """End one backend and wait until it is gone, so its client's next use fails."""
        with self.admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                gone = conn.execute(
                    text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                ).first()
                if gone is None:
                    break
                time.sleep(0.01)
        self.killed += 1

    @contextlib.contextmanager
    def inside(
        self,
        target: Engine | type[Engine],
        when: Callable[[str], bool] = lambda _sql: True,
        *,
        times: int = 1,
        at_commit: bool = False,
    ) -> Iterator[None]:
        """Terminate the connection about to run a statement `when` matches (or, `at_commit`,
        about to commit), `times` times: the operation's transaction dies half done.

        `target` is an engine, or the Engine class for engines a component builds itself
        (then only connections to this database count).
        """
        left = [times]

        def kill(conn: Any) -> None:
            if left[0] > 0 and conn.engine.url.database == self.database:
                left[0] -= 1
                self.terminate(conn.connection.dbapi_connection.info.backend_pid)

        def before_execute(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if when(statement):
                kill(conn)

        name, listener = (
            ("commit", kill) if at_commit else ("before_cursor_execute", before_execute)
        )
        event.listen(target, name, listener)
        try:
            yield
        finally:
            event.remove(target, name, listener)
