"""Bulk loading of the seed's large tables, and the counters their triggers would have kept.

The four large tables are filled with their secondary indexes, unique and foreign-key
constraints and triggers set aside, then each is rebuilt once: a sorted index build and one
anti-join per foreign key instead of ~6 index insertions and 2 key lookups per row, and no
transition tables of millions of rows for the counting triggers (the counters are then
added from one GROUP BY). Definitions are read back from the catalog, so what is rebuilt is
exactly what the migrations made. It is one transaction: other sessions never see the
tables without them (they wait on the locks instead).
"""

from __future__ import annotations

from app.stats.repository import CAMPAIGN_FIELDS, STATUSES, TOTAL_FIELDS

BULK_TABLES = ("contacts", "category_contacts", "messages", "interactions")
SET_ASIDE = f"""
SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname) AS drop,
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
              pg_get_constraintdef(c.oid)) AS restore,
       c.contype = 'f' AS foreign_key
FROM pg_constraint AS c
WHERE c.conrelid = ANY ('{{{",".join(BULK_TABLES)}}}'::regclass[]) AND c.contype IN ('u', 'f')
UNION ALL
SELECT format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid), false
FROM pg_index AS i
WHERE i.indrelid = ANY ('{{{",".join(BULK_TABLES)}}}'::regclass[])
  AND NOT EXISTS (SELECT FROM pg_constraint AS c
                  WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
"""
TRIGGERS = "ALTER TABLE {table} {action} TRIGGER USER"
# What the disabled triggers would have counted: every row of these tables is the seed's
# (it starts from no contacts, hence no messages or interactions).
_BY_STATUS = ", ".join(f"count(*) FILTER (WHERE status = '{s}') AS {s}" for s in STATUSES)
_MESSAGE_TOTALS = ", ".join(
    f"coalesce(sum({f}), 0)::bigint" if f in CAMPAIGN_FIELDS else "0" for f in TOTAL_FIELDS
)
COUNTERS = (
    """
SELECT herald_add_contact_counts(count(*), count(*) FILTER (WHERE opted_out_at IS NOT NULL))
FROM contacts
""",
    f"""
SELECT herald_add_campaign_counts(m.campaign_id,
       {", ".join(f"m.{f}" for f in STATUSES)}, coalesce(i.n, 0))
FROM (
  SELECT campaign_id, {_BY_STATUS} FROM messages GROUP BY campaign_id
) AS m
LEFT JOIN (SELECT campaign_id, count(*) AS n FROM interactions GROUP BY campaign_id) AS i
  USING (campaign_id)
ORDER BY m.campaign_id
""",
    # campaigns and categories were counted by their own triggers as they were inserted
    f"SELECT herald_add_total_counts({_MESSAGE_TOTALS}) FROM campaign_counters",
)
