"""statistics totals kept by triggers

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 15:00:00.000000

The dashboard and messageStats summed the counter rows of every campaign and counted the
campaigns and categories tables, so their cost still grew with the number of campaigns.
`total_counters` keeps those totals: messages per status and interactions over all
campaigns, the categories, and the campaigns per status. They are kept like the
counters of migration 0002, by statement-level triggers in the same transaction as the
change, in shard rows a writer picks with FOR UPDATE SKIP LOCKED (writers never wait
for each other), so a read sums a handful of rows however much data there is.

The message totals move in the same trigger calls as `campaign_counters`, by the same
deltas (those of campaigns that still exist), and deleting a campaign subtracts exactly
the counter rows it deletes. A writer racing an SQL-only campaign deletion can still
leave a counter row for the deleted campaign (the deletion cannot see a row inserted by
a transaction that has not committed yet), counted in the totals too; folding
(app/stats) drops such orphan rows and subtracts them from the totals.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("pending", "sending", "sent", "delivered", "read", "failed")
CAMPAIGN_FIELDS = (*STATUSES, "interactions")
CAMPAIGN_STATUSES = ("draft", "scheduled", "sending", "paused", "completed", "cancelled", "failed")
TOTAL_FIELDS = (
    *CAMPAIGN_FIELDS,
    "categories",
    *(f"campaigns_{status}" for status in CAMPAIGN_STATUSES),
)

# As herald_add_campaign_counts (0002), without a key: add to a shard row no other open
# transaction holds, or add a row.
_ADD_TOTALS = f"""
    CREATE FUNCTION herald_add_total_counts({", ".join(f"d_{c} bigint" for c in TOTAL_FIELDS)})
    RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
        target smallint;
    BEGIN
        LOOP
            SELECT shard INTO target FROM total_counters
            ORDER BY shard LIMIT 1 FOR UPDATE SKIP LOCKED;
            IF FOUND THEN
                UPDATE total_counters SET {", ".join(f"{c} = {c} + d_{c}" for c in TOTAL_FIELDS)}
                WHERE shard = target;
                RETURN;
            END IF;
            INSERT INTO total_counters (shard, {", ".join(TOTAL_FIELDS)})
            VALUES (floor(random() * 32767)::smallint, {", ".join(f"d_{c}" for c in TOTAL_FIELDS)})
            ON CONFLICT DO NOTHING;
            IF FOUND THEN
                RETURN;
            END IF;
        END LOOP;
    END $$"""


def _add_totals(values: dict[str, str]) -> str:
    """PERFORM herald_add_total_counts with `values` by field, 0 for the others."""
    return (
        f"PERFORM herald_add_total_counts({', '.join(values.get(f, '0') for f in TOTAL_FIELDS)});"
    )


def _nonzero(names: Sequence[str]) -> str:
    return " OR ".join(f"{n} <> 0" for n in names)


def _counting_function(name: str, columns: Sequence[str]) -> str:
    """0002's per-campaign counting, which now also adds each statement's sum to the totals."""
    key = "status" if columns == STATUSES else "'interactions'"
    sums = ", ".join(f"coalesce(sum(n) FILTER (WHERE k = '{c}'), 0) AS {c}" for c in columns)
    nonzero = _nonzero([f"r.{c}" for c in columns])
    args = ", ".join(f"r.{c}" if c in columns else "0" for c in CAMPAIGN_FIELDS)
    accumulate = " ".join(f"t_{c} := t_{c} + r.{c};" for c in columns)

    def deltas(rows: str) -> str:
        return f"""
        FOR r IN
            SELECT campaign_id, {sums}
            FROM (SELECT campaign_id, {key} AS k, n FROM ({rows}) AS raw) AS d
            GROUP BY campaign_id
            ORDER BY campaign_id
        LOOP
            IF ({nonzero}) AND EXISTS (SELECT FROM campaigns WHERE id = r.campaign_id) THEN
                PERFORM herald_add_campaign_counts(r.campaign_id, {args});
                {accumulate}
            END IF;
        END LOOP;"""

    status = "status," if columns == STATUSES else ""
    inserted = f"SELECT campaign_id, {status} 1 AS n FROM new_rows"
    deleted = f"SELECT campaign_id, {status} -1 AS n FROM old_rows"
    return f"""
    CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        r record;
        {" ".join(f"t_{c} bigint := 0;" for c in columns)}
    BEGIN
        IF TG_OP = 'INSERT' THEN {deltas(inserted)}
        ELSIF TG_OP = 'DELETE' THEN {deltas(deleted)}
        ELSE {deltas(f"{inserted} UNION ALL {deleted}")}
        END IF;
        IF {_nonzero([f"t_{c}" for c in columns])} THEN
            {_add_totals({c: f"t_{c}" for c in columns})}
        END IF;
        RETURN NULL;
    END $$"""


_CAMPAIGN_SUMS = ", ".join(
    f"coalesce(sum(n) FILTER (WHERE status = '{s}'), 0) AS {s}" for s in CAMPAIGN_STATUSES
)
_CAMPAIGN_TOTALS = {f"campaigns_{s}": f"r.{s}" for s in CAMPAIGN_STATUSES}
_CAMPAIGNS_NEW = "SELECT status, 1 AS n FROM new_rows"
_CAMPAIGNS_OLD = "SELECT status, -1 AS n FROM old_rows"


def _campaign_deltas(rows: str) -> str:
    return f"""
        SELECT {_CAMPAIGN_SUMS} INTO r FROM ({rows}) AS d;
        IF {_nonzero([f"r.{s}" for s in CAMPAIGN_STATUSES])} THEN
            {_add_totals(_CAMPAIGN_TOTALS)}
        END IF;"""


_FORGOTTEN = ", ".join(f"coalesce(sum({c}), 0)::bigint AS {c}" for c in CAMPAIGN_FIELDS)

FUNCTIONS = {
    "herald_add_total_counts": _ADD_TOTALS,
    "herald_count_campaigns": f"""
    CREATE FUNCTION herald_count_campaigns() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        r record;
    BEGIN
        IF TG_OP = 'INSERT' THEN {_campaign_deltas(_CAMPAIGNS_NEW)}
        ELSIF TG_OP = 'DELETE' THEN {_campaign_deltas(_CAMPAIGNS_OLD)}
        ELSE {_campaign_deltas(f"{_CAMPAIGNS_NEW} UNION ALL {_CAMPAIGNS_OLD}")}
        END IF;
        RETURN NULL;
    END $$""",
    "herald_count_categories": f"""
    CREATE FUNCTION herald_count_categories() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        n bigint;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            SELECT count(*) INTO n FROM new_rows;
        ELSE
            SELECT -count(*) INTO n FROM old_rows;
        END IF;
        IF n <> 0 THEN
            {_add_totals({"categories": "n"})}
        END IF;
        RETURN NULL;
    END $$""",
}

# 0002's functions, redefined to keep the totals too (restored by the downgrade).
REPLACED = {
    "herald_count_messages": _counting_function("herald_count_messages", STATUSES),
    "herald_count_interactions": _counting_function("herald_count_interactions", ("interactions",)),
    "herald_forget_campaigns": f"""
    CREATE OR REPLACE FUNCTION herald_forget_campaigns() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        r record;
    BEGIN
        WITH gone AS (
            DELETE FROM campaign_counters WHERE campaign_id IN (SELECT id FROM old_rows)
            RETURNING *
        )
        SELECT {_FORGOTTEN} INTO r FROM gone;
        IF {_nonzero([f"r.{c}" for c in CAMPAIGN_FIELDS])} THEN
            {_add_totals({c: f"-r.{c}" for c in CAMPAIGN_FIELDS})}
        END IF;
        RETURN NULL;
    END $$""",
    "herald_reset_counters": f"""
    CREATE OR REPLACE FUNCTION herald_reset_counters() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_TABLE_NAME = 'messages' THEN
            DELETE FROM campaign_counters;
            UPDATE total_counters SET {", ".join(f"{c} = 0" for c in CAMPAIGN_FIELDS)};
        ELSIF TG_TABLE_NAME = 'interactions' THEN
            UPDATE campaign_counters SET interactions = 0 WHERE interactions <> 0;
            UPDATE total_counters SET interactions = 0 WHERE interactions <> 0;
        ELSIF TG_TABLE_NAME = 'campaigns' THEN
            DELETE FROM campaign_counters;
            UPDATE total_counters
            SET {", ".join(f"{c} = 0" for c in TOTAL_FIELDS if c != "categories")};
        ELSIF TG_TABLE_NAME = 'categories' THEN
            UPDATE total_counters SET categories = 0 WHERE categories <> 0;
        ELSE
            DELETE FROM contact_counters;
        END IF;
        RETURN NULL;
    END $$""",
}

TRIGGERS = {
    "campaigns_count_insert": """CREATE TRIGGER campaigns_count_insert AFTER INSERT ON campaigns
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION herald_count_campaigns()""",
    "campaigns_count_delete": """CREATE TRIGGER campaigns_count_delete AFTER DELETE ON campaigns
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
        EXECUTE FUNCTION herald_count_campaigns()""",
    "campaigns_count_update": """CREATE TRIGGER campaigns_count_update AFTER UPDATE ON campaigns
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION herald_count_campaigns()""",
    "categories_count_insert": """CREATE TRIGGER categories_count_insert
        AFTER INSERT ON categories REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION herald_count_categories()""",
    "categories_count_delete": """CREATE TRIGGER categories_count_delete
        AFTER DELETE ON categories REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
        EXECUTE FUNCTION herald_count_categories()""",
    **{
        f"{table}_reset_counters": f"""CREATE TRIGGER {table}_reset_counters
            AFTER TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION herald_reset_counters()"""
        for table in ("campaigns", "categories")
    },
}

_BACKFILL = f"""
INSERT INTO total_counters (shard, {", ".join(TOTAL_FIELDS)})
SELECT 0, {", ".join(f"m.{c}" for c in CAMPAIGN_FIELDS)},
       (SELECT count(*) FROM categories),
       {", ".join(f"s.{c}" for c in CAMPAIGN_STATUSES)}
FROM (
    SELECT {", ".join(f"coalesce(sum(k.{c}), 0) AS {c}" for c in CAMPAIGN_FIELDS)}
    FROM campaign_counters AS k JOIN campaigns AS c ON c.id = k.campaign_id
) AS m, (
    SELECT {", ".join(f"count(*) FILTER (WHERE status = '{s}') AS {s}" for s in CAMPAIGN_STATUSES)}
    FROM campaigns
) AS s
"""


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "total_counters",
        sa.Column("shard", sa.SmallInteger(), autoincrement=False, nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), server_default=sa.text("0"), nullable=False)
            for name in TOTAL_FIELDS
        ),
        sa.PrimaryKeyConstraint("shard", name=op.f("pk_total_counters")),
    )
    # The totals start from the counters, under a lock so no write slips between.
    op.execute(
        "LOCK TABLE campaigns, categories, messages, interactions, campaign_counters IN SHARE MODE"
    )
    op.execute(_BACKFILL)
    for sql in (*FUNCTIONS.values(), *REPLACED.values(), *TRIGGERS.values()):
        op.execute(sql)


def _counters_0002() -> ModuleType:
    path = Path(__file__).with_name("2026_12_01_2100-0002_statistics_counters.py")
    spec = importlib.util.spec_from_file_location("herald_migration_0002", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    """Downgrade schema."""
    for trigger in TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger} ON {trigger.split('_', 1)[0]}")
    previous = _counters_0002().FUNCTIONS
    for name in REPLACED:
        op.execute(previous[name].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}")
    op.drop_table("total_counters")
