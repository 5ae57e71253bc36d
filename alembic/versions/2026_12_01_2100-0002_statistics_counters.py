"""statistics counters kept by triggers

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 21:00:00.000000

Every statistic used to be a count(*) over messages, so its cost grew with the data.
These counters are kept exact in the same transaction as every change that moves them,
by statement-level AFTER triggers with transition tables on messages, interactions,
contacts and campaigns. Why triggers rather than counter updates in the application:

- Nothing can forget them. Materialize, claim, record sent/failed, status webhooks, the
  sweeper, retries, cancel, opt-outs and the cascades of contact and campaign deletion
  all change rows through SQL; a trigger sees each of them, including cascades that no
  application code runs.
- One aggregate per statement, not per row: a claim of 100 messages adds one upsert of
  one row (the deltas summed by campaign), so the cost follows statements, not rows.
- No hot row, no waiting: a campaign's figures are the SUM of its counter rows, and a
  statement adds its deltas to a row no other open transaction holds (FOR UPDATE SKIP
  LOCKED), adding a row when all are taken. Writers never queue behind each other's
  counters, so the counters add no lock waits and no deadlocks to dispatch; a campaign
  has about as many rows as it ever had concurrent writers, and a reader sums those.
  (A fixed set of shards picked by backend pid was the first design: two transactions
  on the same shard then wait for each other, and a worker holding a shard while it
  updates a message that a contact deletion has locked can deadlock with it.)

interactions gains campaign_id (filled from the message by a row trigger when the
inserter leaves it NULL): when a message is deleted its interactions are removed by the
cascade after the message row is gone, so only the interaction itself can say which
campaign's counter to decrement.

TRUNCATE fires no row or statement DELETE triggers; TRUNCATE triggers reset the counters.
`herald stats verify [--repair]` compares them with count(*) and corrects any drift
(e.g. after writes with session_replication_role = replica, which skips triggers).
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("pending", "sending", "sent", "delivered", "read", "failed")
CAMPAIGN_FIELDS = (*STATUSES, "interactions")

# Add deltas to one of the counter rows nobody else holds: SKIP LOCKED passes over rows
# that other open transactions are changing (rows this transaction holds are reused), and
# when all are taken a new row is added under a random shard number. A writer therefore
# never waits for another writer's counter row.
_ADD = """
    CREATE FUNCTION {name}({key}{params}) RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
        target smallint;
    BEGIN
        LOOP
            SELECT shard INTO target FROM {table}
            WHERE {match} ORDER BY shard LIMIT 1 FOR UPDATE SKIP LOCKED;
            IF FOUND THEN
                UPDATE {table} SET {adds} WHERE {match} AND shard = target;
                RETURN;
            END IF;
            INSERT INTO {table} ({key_column}shard, {columns})
            VALUES ({key_value}floor(random() * 32767)::smallint, {values})
            ON CONFLICT DO NOTHING;
            IF FOUND THEN
                RETURN;
            END IF;
        END LOOP;
    END $$"""


def _add_function(name: str, table: str, columns: Sequence[str], keyed: bool) -> str:
    return _ADD.format(
        name=name,
        table=table,
        key="key bigint, " if keyed else "",
        params=", ".join(f"d_{c} bigint" for c in columns),
        match="campaign_id = key" if keyed else "true",
        adds=", ".join(f"{c} = {c} + d_{c}" for c in columns),
        key_column="campaign_id, " if keyed else "",
        key_value="key, " if keyed else "",
        columns=", ".join(columns),
        values=", ".join(f"d_{c}" for c in columns),
    )


def _campaign_deltas(deltas: str, columns: Sequence[str]) -> str:
    """Sum `deltas` per campaign and add them, in campaign order.

    Deltas of campaigns that no longer exist are dropped: deleting a campaign cascades to
    its messages and interactions, whose triggers run after the campaign's own trigger
    has removed its counters.
    """
    key = "status" if columns == STATUSES else "'interactions'"
    sums = ", ".join(f"coalesce(sum(n) FILTER (WHERE k = '{c}'), 0) AS {c}" for c in columns)
    nonzero = " OR ".join(f"r.{c} <> 0" for c in columns)
    args = ", ".join(f"r.{c}" if c in columns else "0" for c in CAMPAIGN_FIELDS)
    return f"""
        FOR r IN
            SELECT campaign_id, {sums}
            FROM (SELECT campaign_id, {key} AS k, n FROM ({deltas}) AS raw) AS d
            GROUP BY campaign_id
            ORDER BY campaign_id
        LOOP
            IF ({nonzero}) AND EXISTS (SELECT FROM campaigns WHERE id = r.campaign_id) THEN
                PERFORM herald_add_campaign_counts(r.campaign_id, {args});
            END IF;
        END LOOP;"""


def _counting_function(name: str, deltas: Callable[[str], str], status: str) -> str:
    """A trigger function that turns the statement's transition tables into deltas."""
    inserted = f"SELECT campaign_id, {status} 1 AS n FROM new_rows"
    deleted = f"SELECT campaign_id, {status} -1 AS n FROM old_rows"
    return f"""
    CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        r record;
    BEGIN
        IF TG_OP = 'INSERT' THEN {deltas(inserted)}
        ELSIF TG_OP = 'DELETE' THEN {deltas(deleted)}
        ELSE {deltas(f"{inserted} UNION ALL {deleted}")}
        END IF;
        RETURN NULL;
    END $$"""


def _statement_triggers(table: str, function: str) -> list[str]:
    # Every UPDATE fires (transition tables cannot go with `UPDATE OF column`); updates
    # that move no counter net to zero and write nothing.
    return [
        f"""CREATE TRIGGER {table}_count_insert AFTER INSERT ON {table}
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()""",
        f"""CREATE TRIGGER {table}_count_delete AFTER DELETE ON {table}
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()""",
        f"""CREATE TRIGGER {table}_count_update AFTER UPDATE ON {table}
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION {function}()""",
    ]


_CONTACT_DELTAS = """
        SELECT coalesce(sum(n), 0) AS contacts,
               coalesce(sum(n) FILTER (WHERE opted), 0) AS opted_out
        INTO r FROM ({deltas}) AS d;
        IF r.contacts <> 0 OR r.opted_out <> 0 THEN
            PERFORM herald_add_contact_counts(r.contacts, r.opted_out);
        END IF;"""
_CONTACTS_NEW = "SELECT opted_out_at IS NOT NULL AS opted, 1 AS n FROM new_rows"
_CONTACTS_OLD = "SELECT opted_out_at IS NOT NULL AS opted, -1 AS n FROM old_rows"

FUNCTIONS = {
    "herald_add_campaign_counts": _add_function(
        "herald_add_campaign_counts", "campaign_counters", CAMPAIGN_FIELDS, keyed=True
    ),
    "herald_add_contact_counts": _add_function(
        "herald_add_contact_counts", "contact_counters", ("contacts", "opted_out"), keyed=False
    ),
    "herald_count_messages": _counting_function(
        "herald_count_messages", lambda d: _campaign_deltas(d, STATUSES), "status,"
    ),
    "herald_count_interactions": _counting_function(
        "herald_count_interactions", lambda d: _campaign_deltas(d, ("interactions",)), ""
    ),
    "herald_count_contacts": f"""
    CREATE FUNCTION herald_count_contacts() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        r record;
    BEGIN
        IF TG_OP = 'INSERT' THEN {_CONTACT_DELTAS.format(deltas=_CONTACTS_NEW)}
        ELSIF TG_OP = 'DELETE' THEN {_CONTACT_DELTAS.format(deltas=_CONTACTS_OLD)}
        ELSE {_CONTACT_DELTAS.format(deltas=f"{_CONTACTS_NEW} UNION ALL {_CONTACTS_OLD}")}
        END IF;
        RETURN NULL;
    END $$""",
    "herald_interaction_campaign": """
    CREATE FUNCTION herald_interaction_campaign() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.campaign_id IS NULL THEN
            SELECT campaign_id INTO NEW.campaign_id FROM messages WHERE id = NEW.message_id;
        END IF;
        RETURN NEW;
    END $$""",
    "herald_forget_campaigns": """
    CREATE FUNCTION herald_forget_campaigns() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM campaign_counters WHERE campaign_id IN (SELECT id FROM old_rows);
        RETURN NULL;
    END $$""",
    "herald_reset_counters": """
    CREATE FUNCTION herald_reset_counters() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_TABLE_NAME = 'messages' THEN
            DELETE FROM campaign_counters;
        ELSIF TG_TABLE_NAME = 'interactions' THEN
            UPDATE campaign_counters SET interactions = 0 WHERE interactions <> 0;
        ELSE
            DELETE FROM contact_counters;
        END IF;
        RETURN NULL;
    END $$""",
}

TRIGGERS = [
    *_statement_triggers("messages", "herald_count_messages"),
    *_statement_triggers("interactions", "herald_count_interactions"),
    *_statement_triggers("contacts", "herald_count_contacts"),
    """CREATE TRIGGER interactions_campaign BEFORE INSERT ON interactions
       FOR EACH ROW EXECUTE FUNCTION herald_interaction_campaign()""",
    """CREATE TRIGGER campaigns_forget_counters AFTER DELETE ON campaigns
       REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
       EXECUTE FUNCTION herald_forget_campaigns()""",
    *(
        f"""CREATE TRIGGER {table}_reset_counters AFTER TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION herald_reset_counters()"""
        for table in ("messages", "interactions", "contacts")
    ),
]

_COUNT_BY_STATUS = ", ".join(f"count(*) FILTER (WHERE status = '{s}') AS {s}" for s in STATUSES)
_BACKFILL = [
    "UPDATE interactions AS i SET campaign_id = m.campaign_id FROM messages AS m"
    " WHERE m.id = i.message_id",
    f"""
    INSERT INTO campaign_counters (campaign_id, shard, {", ".join(STATUSES)}, interactions)
    SELECT c.id, 0, {", ".join(f"coalesce(s.{s}, 0)" for s in STATUSES)},
           coalesce(i.n, 0)
    FROM campaigns AS c
    LEFT JOIN (
        SELECT campaign_id, {_COUNT_BY_STATUS} FROM messages GROUP BY campaign_id
    ) AS s ON s.campaign_id = c.id
    LEFT JOIN (SELECT campaign_id, count(*) AS n FROM interactions GROUP BY campaign_id) AS i
        ON i.campaign_id = c.id
    """,
    """
    INSERT INTO contact_counters (shard, contacts, opted_out)
    SELECT 0, count(*), count(*) FILTER (WHERE opted_out_at IS NOT NULL) FROM contacts
    """,
]


def upgrade() -> None:
    """Upgrade schema."""
    zero = sa.text("0")
    op.create_table(
        "campaign_counters",
        sa.Column("campaign_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("shard", sa.SmallInteger(), autoincrement=False, nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), server_default=zero, nullable=False)
            for name in (*STATUSES, "interactions")
        ),
        sa.PrimaryKeyConstraint("campaign_id", "shard", name=op.f("pk_campaign_counters")),
    )
    op.create_table(
        "contact_counters",
        sa.Column("shard", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("contacts", sa.BigInteger(), server_default=zero, nullable=False),
        sa.Column("opted_out", sa.BigInteger(), server_default=zero, nullable=False),
        sa.PrimaryKeyConstraint("shard", name=op.f("pk_contact_counters")),
    )
    op.add_column("interactions", sa.Column("campaign_id", sa.BigInteger(), nullable=True))
    # Existing rows are counted by the backfill, under a lock so no write slips between.
    op.execute("LOCK TABLE campaigns, messages, interactions, contacts IN SHARE MODE")
    for statement in _BACKFILL:
        op.execute(statement)
    op.alter_column("interactions", "campaign_id", nullable=False)
    for sql in FUNCTIONS.values():
        op.execute(sql)
    for sql in TRIGGERS:
        op.execute(sql)


def downgrade() -> None:
    """Downgrade schema."""
    for table, kinds in (
        ("messages", ("count_insert", "count_delete", "count_update", "reset_counters")),
        ("interactions", ("count_insert", "count_delete", "count_update", "reset_counters")),
        ("contacts", ("count_insert", "count_delete", "count_update", "reset_counters")),
        ("interactions", ("campaign",)),
        ("campaigns", ("forget_counters",)),
    ):
        for kind in kinds:
            op.execute(f"DROP TRIGGER {table}_{kind} ON {table}")
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}")
    op.drop_column("interactions", "campaign_id")
    op.drop_table("contact_counters")
    op.drop_table("campaign_counters")
