"""Alembic, programmatically (no alembic.ini): upgrade, inspect and author the schema's migrations.

`submissions migrate` and `submissions db …` are the operator's commands over these functions.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    """An Alembic config pointing at our migrations folder; revisions are numbered 0001, …"""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to `revision`; idempotent."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current(engine: Engine) -> list[str]:
    """The revisions the database is at (empty for a database never migrated)."""
    with engine.connect() as conn:
        return list(MigrationContext.configure(conn).get_current_heads())


def head() -> str:
    """The newest revision in the migrations folder."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations must form one line; heads: {heads}")
    return heads[0]


def history() -> list[tuple[str, str | None, str]]:
    """Every migration, oldest first: (revision, the one it revises, its first doc line)."""
    script = ScriptDirectory.from_config(alembic_config())
    out = [
        (rev.revision, rev.down_revision, (rev.doc or "").strip().splitlines()[0])  # type: ignore[arg-type]
        for rev in script.walk_revisions()
    ]
    return list(reversed(out))


def revision(message: str, *, engine: Engine | None = None) -> Path:
    """Write a new migration file after the head, numbered like the others.

    With `engine`, its body is generated from the difference between that database (brought
    to head first) and the tables the code declares; without, it is an empty template.
    """
    cfg = alembic_config()
    rev_id = f"{int(head()) + 1:04d}"
    if engine is None:
        script = command.revision(cfg, message=message, rev_id=rev_id)
    else:
        upgrade(engine)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            script = command.revision(cfg, message=message, rev_id=rev_id, autogenerate=True)
    assert script is not None and not isinstance(script, list)
    return Path(script.path)
