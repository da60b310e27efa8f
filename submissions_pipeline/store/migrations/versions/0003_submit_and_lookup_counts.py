"""Jobs count their submit clicks, their claims that could submit (tries) apart from the claims
that only looked a possibly-submitted case up (lookup_claims), and the lookup misses since the
last click: what reconciliation needs to prove a submission absent before submitting again.

Jobs already in the store get truthful counts replayed from their event history.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)

#: Steps at or after the submit click (the portal may hold the case from then on).
_SUBMIT_STEPS = {
    "submit_clicked",
    "confirmed",
    "reference_parsed",
    "evidence_stored",
    "crm_updated",
}


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("tries", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("lookup_claims", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("submit_clicks", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_submit_at", TS))
        batch.add_column(sa.Column("lookup_misses", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("first_miss_at", TS))
        batch.add_column(sa.Column("last_miss_at", TS))
    _replay_counts()


def _replay_counts() -> None:
    """Each existing job's counts from its history: a claim of a job that may already be on
    the portal was a lookup, any other claim a try; a re-drive started the budget anew."""
    conn = op.get_bind()
    events = sa.table(
        "job_events",
        sa.column("event_id"),
        sa.column("job_id"),
        sa.column("kind"),
        sa.column("from_state"),
        sa.column("to_state"),
        sa.column("step"),
        sa.column("at", TS),
    )
    jobs = sa.table(
        "jobs",
        sa.column("job_id"),
        sa.column("tries"),
        sa.column("lookup_claims"),
        sa.column("submit_clicks"),
        sa.column("last_submit_at", TS),
    )
    rows = conn.execute(
        sa.select(
            events.c.job_id,
            events.c.kind,
            events.c.from_state,
            events.c.to_state,
            events.c.step,
            events.c.at,
        ).order_by(events.c.job_id, events.c.event_id)
    )
    counts: dict[str, dict] = {}
    submitted: dict[str, bool] = {}
    # Whether the job's current claim is a lookup not yet counted as a try.
    looking_up: dict[str, bool] = {}
    for job_id, kind, from_state, to_state, step, at in rows:
        c = counts.setdefault(
            job_id, {"tries": 0, "lookup_claims": 0, "submit_clicks": 0, "last_submit_at": None}
        )
        if kind == "transition" and to_state == "running":
            looking_up[job_id] = bool(submitted.get(job_id))
            c["lookup_claims" if looking_up[job_id] else "tries"] += 1
        if kind == "transition" and from_state == "dead_lettered" and to_state == "queued":
            c["tries"] = c["lookup_claims"] = 0
        if kind == "milestone" and step == "submit_clicked":
            c["submit_clicks"] += 1
            c["last_submit_at"] = at
            if looking_up.get(job_id):
                # A lookup that went on to submit again was a try as well.
                c["tries"] += 1
                looking_up[job_id] = False
        if step in _SUBMIT_STEPS:
            submitted[job_id] = True
    for job_id, c in counts.items():
        conn.execute(sa.update(jobs).where(jobs.c.job_id == job_id).values(**c))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for name in (
            "last_miss_at",
            "first_miss_at",
            "lookup_misses",
            "last_submit_at",
            "submit_clicks",
            "lookup_claims",
            "tries",
        ):
            batch.drop_column(name)
