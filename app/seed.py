"""Set-based generator of realistic demo and benchmark data (`herald seed`, `herald dev`, bench)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.stats.repository import CAMPAIGN_FIELDS, STATUSES, TOTAL_FIELDS

# Every statement below is one INSERT ... SELECT over generate_series: PostgreSQL builds
# the rows itself, so a million messages cost one round trip, not a million.

DATA_TABLES = (
    "interactions, messages, campaign_categories, campaigns, category_contacts, "
    "categories, contacts"
)

# Mobile ranges that `phonenumbers` accepts as valid for each country. A contact's
# number is prefix || lpad(base + (k * 7919 + offset) % span, width): 7919 is prime and coprime
# with every span, so k -> number is a bijection within a country and phones stay unique.
_COUNTRIES = (
    "DROP TABLE IF EXISTS pg_temp.seed_country",
    """
CREATE TEMP TABLE seed_country ON COMMIT DROP AS
SELECT * FROM (VALUES
  (0, 'FR', 'France', 'fr', '+3361', 0, 10000000, 7,
   ARRAY['Camille','Léa','Hugo','Louis','Chloé','Jules','Manon','Nathan'],
   ARRAY['Martin','Bernard','Dubois','Thomas','Robert','Richard','Petit','Durand'],
   ARRAY['Paris','Lyon','Marseille','Toulouse','Nantes','Lille']),
  (1, 'GB', 'United Kingdom', 'en', '+44771', 0, 10000000, 7,
   ARRAY['Oliver','Amelia','George','Isla','Harry','Ava','Jack','Mia'],
   ARRAY['Smith','Jones','Taylor','Brown','Williams','Wilson','Evans','Clarke'],
   ARRAY['London','Manchester','Birmingham','Leeds','Glasgow','Bristol']),
  (2, 'DE', 'Germany', 'de', '+49151', 0, 100000000, 8,
   ARRAY['Lukas','Emma','Leon','Hannah','Finn','Mia','Paul','Sofia'],
   ARRAY['Müller','Schmidt','Schneider','Fischer','Weber','Meyer','Wagner','Becker'],
   ARRAY['Berlin','Hamburg','München','Köln','Frankfurt','Stuttgart']),
  (3, 'US', 'United States', 'en', '+1415', 2000000, 8000000, 7,
   ARRAY['Liam','Olivia','Noah','Emma','James','Charlotte','Lucas','Sophia'],
   ARRAY['Johnson','Garcia','Miller','Davis','Rodriguez','Martinez','Lee','Walker'],
   ARRAY['San Francisco','Oakland','San Jose','Berkeley','Palo Alto','Daly City']),
  (4, 'IN', 'India', 'en', '+9198', 0, 100000000, 8,
   ARRAY['Aarav','Ananya','Vihaan','Diya','Arjun','Isha','Rohan','Priya'],
   ARRAY['Sharma','Patel','Singh','Kumar','Gupta','Reddy','Iyer','Nair'],
   ARRAY['Mumbai','Delhi','Bengaluru','Chennai','Hyderabad','Pune']),
  (5, 'NG', 'Nigeria', 'en', '+234803', 0, 10000000, 7,
   ARRAY['Chinedu','Ngozi','Emeka','Amaka','Tunde','Funke','Ibrahim','Aisha'],
   ARRAY['Okafor','Adeyemi','Okeke','Bello','Balogun','Eze','Abubakar','Nwosu'],
   ARRAY['Lagos','Abuja','Kano','Ibadan','Port Harcourt','Enugu'])
) AS t(idx, code, country_name, language, prefix, base, span, width,
       first_names, last_names, cities)
""",
)

_CONTACTS = """
INSERT INTO contacts (phone, name, attributes, whatsapp_status, whatsapp_checked_at,
                      created_at, updated_at)
SELECT
  c.prefix || lpad((c.base + (n.k * 7919 + 4321987) % c.span)::text, c.width, '0'),
  p.first_name || ' ' || p.last_name,
  jsonb_build_object(
    'first_name', p.first_name, 'last_name', p.last_name, 'city', p.city,
    'country', c.code, 'language', c.language, 'loyalty_points', floor(n.r3 * 5000)::int),
  p.whatsapp_status,
  CASE WHEN p.whatsapp_status <> 'unknown' THEN p.created_at + interval '1 hour' END,
  p.created_at,
  p.created_at
FROM (
  SELECT i, i / 6 AS k, i % 6 AS country_idx, random() AS r1, random() AS r2, random() AS r3
  FROM generate_series(0, CAST(:contacts AS bigint) - 1) AS i
) AS n
JOIN seed_country AS c ON c.idx = n.country_idx
CROSS JOIN LATERAL (
  SELECT
    c.first_names[1 + floor(n.r1 * 8)::int] AS first_name,
    c.last_names[1 + (n.i * 5 + n.k) % 8] AS last_name,
    c.cities[1 + floor(n.r2 * 6)::int] AS city,
    CASE WHEN n.r3 < 0.03 THEN 'invalid' WHEN n.r3 < 0.15 THEN 'unknown' ELSE 'valid' END
      AS whatsapp_status,
    now() - interval '1 day' * (1 + 364 * n.r2) AS created_at
) AS p
ORDER BY n.i
"""

# Segments: one per country (membership by the contact's country) and interest segments
# joined by a random share of contacts.
_CATEGORIES = (
    "DROP TABLE IF EXISTS pg_temp.seed_category",
    """
CREATE TEMP TABLE seed_category ON COMMIT DROP AS
SELECT c.country_name AS name, 'Contacts with a number in ' || c.country_name AS description,
       c.code AS country, NULL::float8 AS share
FROM seed_country AS c
UNION ALL
SELECT * FROM (VALUES
  ('VIP', 'Top spenders of the last 12 months', NULL, 0.05::float8),
  ('Newsletter', 'Opted in to the weekly newsletter', NULL, 0.60),
  ('Loyalty programme', 'Members of the loyalty programme', NULL, 0.25),
  ('New customers', 'First purchase in the last 90 days', NULL, 0.15),
  ('Inactive 90 days', 'No purchase in the last 90 days', NULL, 0.20),
  ('Black Friday 2025', 'Bought during Black Friday 2025', NULL, 0.10),
  ('Event attendees', 'Came to an in-store event', NULL, 0.08),
  ('Beta testers', 'Try new features first', NULL, 0.02)
) AS t(name, description, country, share)
""",
    """
INSERT INTO categories (name, description, created_at, updated_at)
SELECT name, description, now() - interval '400 days', now() - interval '400 days'
FROM seed_category
""",
    """
INSERT INTO category_contacts (category_id, contact_id)
SELECT cat.id, ct.id
FROM seed_category AS s
JOIN categories AS cat ON cat.name = s.name
JOIN contacts AS ct
  ON (s.country IS NOT NULL AND ct.attributes ->> 'country' = s.country)
  OR (s.share IS NOT NULL AND random() < s.share)
""",
)

# The first seven campaigns take each status once, so even a tiny seed has them all;
# the rest follow a realistic mix where most campaigns are finished. Creation dates grow
# with the id, as ids are handed out at creation (lists, recentCampaigns included, are
# newest first by id), spread over the past year; each start follows its creation.
_CAMPAIGNS = """
INSERT INTO campaigns (name, template_name, template_language, template_body, status,
                       scheduled_at, started_at, completed_at, created_at, updated_at)
SELECT
  initcap(replace(t.template_name, '_', ' ')) || ' #' || g.i,
  t.template_name, t.language, t.body, s.status,
  CASE s.status
    WHEN 'draft' THEN NULL
    WHEN 'scheduled' THEN now() + interval '1 day' * (1 + 29 * g.r)
    ELSE x.started_at
  END,
  x.started_at,
  CASE WHEN s.status = 'completed' THEN x.started_at + interval '45 minutes' END,
  cr.created_at,
  CASE
    WHEN s.status IN ('sending', 'draft', 'scheduled') THEN now()
    ELSE x.started_at + interval '45 minutes'
  END
FROM (
  SELECT i, random() AS r, random() AS r2
  FROM generate_series(1, CAST(:campaigns AS bigint)) AS i
) AS g
CROSS JOIN LATERAL (
  SELECT CASE
    WHEN g.i <= 7 THEN (ARRAY['draft','scheduled','sending','paused','completed',
                              'cancelled','failed'])[g.i]
    ELSE (ARRAY['completed','completed','completed','completed','completed','completed',
                'completed','completed','completed','completed','completed','completed',
                'completed','completed','sending','paused','cancelled','failed',
                'completed','completed','completed','completed','completed','draft',
                'scheduled'])[1 + (g.i * 7) % 25]
  END AS status
) AS s
CROSS JOIN LATERAL (
  -- evenly spaced 365 days up to 3 days ago, with a jitter under half the spacing: the
  -- order by id holds, and every start below (3 days ago at the earliest) comes later
  SELECT now() - interval '1 day' * (3 + 365.0 * (CAST(:campaigns AS bigint) - g.i + 0.5 * g.r2)
                                            / CAST(:campaigns AS bigint)) AS created_at
) AS cr
CROSS JOIN LATERAL (
  SELECT CASE s.status
    WHEN 'draft' THEN NULL
    WHEN 'scheduled' THEN NULL
    WHEN 'sending' THEN now() - interval '1 hour' * (1 + 2 * g.r)
    WHEN 'paused' THEN now() - interval '1 day' * (1 + 2 * g.r)
    ELSE cr.created_at + interval '1 day' * (1 + g.r)
  END AS started_at
) AS x
JOIN (VALUES
  (0, 'spring_sale', 'en', 'Hi {{1}}, our spring sale starts today: {{2}}% off everything.'),
  (1, 'order_follow_up', 'en', 'Hello {{1}}, how are you enjoying your order from {{2}}?'),
  (2, 'nouvelle_collection', 'fr', 'Bonjour {{1}}, la nouvelle collection est arrivée !'),
  (3, 'store_event', 'en', 'Hi {{1}}, join us at our {{2}} store this Saturday.'),
  (4, 'loyalty_reward', 'en', '{{1}}, you have {{2}} loyalty points waiting for you.'),
  (5, 'winterschlussverkauf', 'de', 'Hallo {{1}}, bis zu {{2}}% Rabatt im Winterschlussverkauf.')
) AS t(idx, template_name, language, body) ON t.idx = g.i % 6
ORDER BY g.i
"""

_CAMPAIGN_TARGETS = """
WITH cats AS (
  SELECT id, row_number() OVER (ORDER BY id) - 1 AS idx, count(*) OVER () AS n
  FROM categories
)
INSERT INTO campaign_categories (campaign_id, category_id)
SELECT DISTINCT c.id, cats.id
FROM campaigns AS c
JOIN cats ON cats.idx IN (c.id % cats.n, (c.id * 7 + 3) % cats.n)
"""

# One statement per started campaign (drafts and scheduled ones have no messages yet), so
# ids follow (campaign, position) with a sort of one campaign's rows in memory rather than
# of all of them on disk.
_STARTED = "SELECT id FROM campaigns WHERE status NOT IN ('draft', 'scheduled') ORDER BY id"
# Each started campaign sends to a window of :per_campaign consecutive contacts starting at
# a campaign-specific offset; per_campaign <= contacts keeps (campaign_id, contact_id) unique.
# Message status follows the campaign: a `sending` campaign is 60% through its window (the
# rest pending, a band in flight), `paused` 40%, `cancelled` 30%, `failed` failed after 10%.
# Numbers known to be off WhatsApp fail with 131026, as the provider reports them.
_MESSAGES = """
INSERT INTO messages (campaign_id, contact_id, status, provider_message_id, error,
                      sent_at, delivered_at, read_at, failed_at, created_at, updated_at)
SELECT
  w.campaign_id, w.contact_id, s.status,
  CASE WHEN s.status NOT IN ('pending', 'sending')
    THEN 'wamid.' || w.campaign_id || '.' || w.contact_id END,
  s.error,
  t.sent_at, t.delivered_at, t.read_at,
  CASE WHEN s.status = 'failed' THEN w.sent_base + interval '2 seconds' END,
  w.started_at,
  greatest(w.started_at, t.sent_at, t.delivered_at, t.read_at,
           CASE WHEN s.status = 'failed' THEN w.sent_base + interval '2 seconds' END)
FROM (
  SELECT
    c.id AS campaign_id, c.status AS campaign_status, c.started_at, j,
    CAST(:first_contact AS bigint) + (c.id * 7919 + j) % CAST(:contacts AS bigint) AS contact_id,
    c.started_at + interval '30 minutes' * (j::float8 / CAST(:per_campaign AS bigint))
      AS sent_base,
    CASE c.status
      WHEN 'sending' THEN CAST(:per_campaign AS bigint) * 6 / 10
      WHEN 'paused' THEN CAST(:per_campaign AS bigint) * 4 / 10
      WHEN 'cancelled' THEN CAST(:per_campaign AS bigint) * 3 / 10
      ELSE CAST(:per_campaign AS bigint)
    END AS cut,
    random() AS r, random() AS r2
  FROM campaigns AS c
  CROSS JOIN generate_series(0, CAST(:per_campaign AS bigint) - 1) AS j
  WHERE c.id = CAST(:campaign_id AS bigint)
) AS w
JOIN contacts AS ct ON ct.id = w.contact_id
CROSS JOIN LATERAL (
  SELECT
    CASE
      WHEN w.j >= w.cut THEN 'pending'
      WHEN w.campaign_status = 'sending'
        AND w.j >= w.cut - greatest(1, CAST(:per_campaign AS bigint) / 50) THEN 'sending'
      WHEN ct.whatsapp_status = 'invalid' THEN 'failed'
      WHEN w.campaign_status = 'failed' AND w.j >= CAST(:per_campaign AS bigint) / 10
        THEN 'failed'
      WHEN w.r < 0.03 THEN 'failed'
      WHEN w.r < 0.15 THEN 'sent'
      WHEN w.r < 0.45 THEN 'delivered'
      ELSE 'read'
    END AS status,
    CASE
      WHEN w.j >= w.cut THEN NULL
      WHEN ct.whatsapp_status = 'invalid' THEN '131026: Message undeliverable'
      WHEN w.campaign_status = 'failed' AND w.j >= CAST(:per_campaign AS bigint) / 10
        THEN '131000: Something went wrong'
      WHEN w.r < 0.01 THEN '131047: Re-engagement message'
      WHEN w.r < 0.02 THEN '131048: Spam rate limit hit'
      ELSE '131049: Meta chose not to deliver'
    END AS error
) AS s0
CROSS JOIN LATERAL (
  SELECT s0.status, CASE WHEN s0.status = 'failed' THEN s0.error END AS error
) AS s
CROSS JOIN LATERAL (
  SELECT
    CASE WHEN s.status IN ('sent', 'delivered', 'read') THEN w.sent_base END AS sent_at,
    CASE WHEN s.status IN ('delivered', 'read')
      THEN w.sent_base + interval '1 second' * (2 + 30 * w.r2) END AS delivered_at,
    CASE WHEN s.status = 'read'
      THEN w.sent_base + interval '1 second' * (2 + 30 * w.r2)
           + least(interval '3 hours', now() - w.sent_base - interval '32 seconds') * w.r2
    END AS read_at
) AS t
ORDER BY w.j
"""

# Recipients who got the message interact with some of it; an opt-out also marks the contact.
_INTERACTIONS = """
INSERT INTO interactions (message_id, campaign_id, kind, payload, created_at)
SELECT
  m.id, m.campaign_id, k.kind,
  CASE k.kind
    WHEN 'reply' THEN jsonb_build_object('text', (ARRAY['Thanks!', 'How much is it?',
      'Is this still available?', 'Yes please', 'Can you call me?'])[1 + m.id % 5])
    WHEN 'click' THEN jsonb_build_object('url', 'https://shop.example.com/c/' || m.campaign_id)
    WHEN 'reaction'
      THEN jsonb_build_object('emoji', (ARRAY['👍', '❤️', '😂', '😮', '🙏'])[1 + m.id % 5])
    ELSE jsonb_build_object('text', 'STOP')
  END,
  least(now(), coalesce(m.read_at, m.delivered_at) + interval '1 minute' * (1 + 120 * random()))
FROM messages AS m
JOIN (VALUES ('reply', 1, 0.04), ('click', 2, 0.08), ('reaction', 3, 0.03), ('opt_out', 4, 0.005))
  AS k(kind, salt, share)
  -- A hash of (message, kind), not random(): the planner would evaluate random() once
  -- per kind instead of once per pair.
  ON abs(hashint8extended(m.id, k.salt)) % 1000000 < k.share * 1000000
WHERE m.status IN ('delivered', 'read')
ORDER BY m.id
"""

_OPT_OUTS = """
UPDATE contacts AS c
SET opted_out_at = o.at, updated_at = greatest(c.updated_at, o.at)
FROM (
  SELECT m.contact_id, min(i.created_at) AS at
  FROM interactions AS i JOIN messages AS m ON m.id = i.message_id
  WHERE i.kind = 'opt_out'
  GROUP BY m.contact_id
) AS o
WHERE c.id = o.contact_id
"""


# Bulk loading. The four large tables are filled with their secondary indexes, unique and
# foreign-key constraints and triggers set aside, then each is rebuilt once: a sorted index
# build and one anti-join per foreign key instead of ~6 index insertions and 2 key lookups
# per row, and no transition tables of millions of rows for the counting triggers (the
# counters are then added from one GROUP BY). Definitions are read back from the catalog,
# so what is rebuilt is exactly what the migrations made. It is one transaction: other
# sessions never see the tables without them (they wait on the locks instead).
_BULK_TABLES = ("contacts", "category_contacts", "messages", "interactions")
_SET_ASIDE = f"""
SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname) AS drop,
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
              pg_get_constraintdef(c.oid)) AS restore,
       c.contype = 'f' AS foreign_key
FROM pg_constraint AS c
WHERE c.conrelid = ANY ('{{{",".join(_BULK_TABLES)}}}'::regclass[]) AND c.contype IN ('u', 'f')
UNION ALL
SELECT format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid), false
FROM pg_index AS i
WHERE i.indrelid = ANY ('{{{",".join(_BULK_TABLES)}}}'::regclass[])
  AND NOT EXISTS (SELECT FROM pg_constraint AS c
                  WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
"""
_TRIGGERS = "ALTER TABLE {table} {action} TRIGGER USER"
# What the disabled triggers would have counted: every row of these tables is the seed's
# (it starts from no contacts, hence no messages or interactions).
_BY_STATUS = ", ".join(f"count(*) FILTER (WHERE status = '{s}') AS {s}" for s in STATUSES)
_MESSAGE_TOTALS = ", ".join(
    f"coalesce(sum({f}), 0)::bigint" if f in CAMPAIGN_FIELDS else "0" for f in TOTAL_FIELDS
)
_COUNTERS = (
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


class SeedError(Exception):
    """The seed cannot run as asked (arguments, or a database that already holds data)."""


@dataclass(frozen=True)
class SeedReport:
    contacts: int
    categories: int
    category_contacts: int
    campaigns: int
    messages: int
    interactions: int
    seconds: float

    def summary(self) -> str:
        return (
            f"{self.contacts:,} contacts, {self.categories:,} categories "
            f"({self.category_contacts:,} memberships), {self.campaigns:,} campaigns, "
            f"{self.messages:,} messages, {self.interactions:,} interactions "
            f"in {self.seconds:.1f} s"
        )


async def seed(
    target: AsyncEngine | AsyncConnection | AsyncSession,
    contacts: int,
    campaigns: int,
    messages_per_campaign: int,
    *,
    reset: bool = False,
) -> SeedReport:
    """Fill an empty database (or a reset one) with generated data.

    `messages_per_campaign` applies to every campaign that has started (drafts and
    scheduled campaigns have no messages yet). With an engine the seed commits; with a
    connection or session it leaves the commit to the caller.
    """
    if contacts < 1 or campaigns < 0 or messages_per_campaign < 0:
        raise SeedError("contacts must be >= 1; campaigns and messages must be >= 0")
    if messages_per_campaign > contacts:
        raise SeedError(
            f"messages per campaign ({messages_per_campaign}) cannot exceed contacts "
            f"({contacts}): a campaign sends at most one message per contact"
        )
    if isinstance(target, AsyncEngine):
        async with target.begin() as connection:
            return await _seed(connection, contacts, campaigns, messages_per_campaign, reset)
    return await _seed(target, contacts, campaigns, messages_per_campaign, reset)


async def has_data(engine: AsyncEngine) -> bool:
    """Whether the database already holds contacts (`herald dev` seeds only the first time)."""
    async with engine.connect() as connection:
        result = await connection.execute(text("SELECT EXISTS (SELECT 1 FROM contacts)"))
        return bool(result.scalar_one())


async def _execute_all(db: AsyncConnection | AsyncSession, statements: tuple[str, ...]) -> None:
    # asyncpg prepares each statement, so a script goes one statement at a time.
    for statement in statements:
        await db.execute(text(statement))


async def _seed(
    db: AsyncConnection | AsyncSession,
    contacts: int,
    campaigns: int,
    per_campaign: int,
    reset: bool,
) -> SeedReport:
    started = time.perf_counter()
    if (await db.execute(text("SELECT to_regclass('contacts')"))).scalar_one() is None:
        raise SeedError("the database has no Herald tables; run `herald migrate` first")
    if reset:
        await db.execute(text(f"TRUNCATE {DATA_TABLES} RESTART IDENTITY CASCADE"))
    existing = (await db.execute(text("SELECT count(*) FROM contacts"))).scalar_one()
    if existing:
        raise SeedError(
            f"the database already has {existing:,} contacts; pass --reset to replace them"
        )
    # Committing a million rows need not wait for each WAL flush; the sorts and index
    # builds of millions of rows stay in memory.
    await db.execute(text("SET LOCAL synchronous_commit = off"))
    await db.execute(text("SET LOCAL work_mem = '256MB'"))
    await db.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
    set_aside = (await db.execute(text(_SET_ASIDE))).all()
    for drop, _, _ in set_aside:
        await db.execute(text(drop))
    for table in _BULK_TABLES:
        await db.execute(text(_TRIGGERS.format(table=table, action="DISABLE")))

    await _execute_all(db, _COUNTRIES)
    await db.execute(text(_CONTACTS), {"contacts": contacts})
    first, last = (await db.execute(text("SELECT min(id), max(id) FROM contacts"))).one()
    # Messages address contacts by id arithmetic, which needs one contiguous block.
    if last - first + 1 != contacts:
        raise SeedError("contact ids are not contiguous; seed into an empty database")
    await _execute_all(db, _CATEGORIES)
    await db.execute(text(_CAMPAIGNS), {"campaigns": campaigns})
    await db.execute(text(_CAMPAIGN_TARGETS))
    for campaign_id in (await db.execute(text(_STARTED))).scalars().all():
        await db.execute(
            text(_MESSAGES),
            {
                "campaign_id": campaign_id,
                "first_contact": first,
                "contacts": contacts,
                "per_campaign": per_campaign,
            },
        )
    await db.execute(text(_INTERACTIONS))
    await db.execute(text(_OPT_OUTS))

    # Indexes and unique constraints first: the foreign keys' checks then use them.
    for _, restore, _ in sorted(set_aside, key=lambda row: row.foreign_key):
        await db.execute(text(restore))
    for table in _BULK_TABLES:
        await db.execute(text(_TRIGGERS.format(table=table, action="ENABLE")))
    await _execute_all(db, _COUNTERS)
    # Fresh statistics so the first queries after a seed get sensible plans.
    await db.execute(text("ANALYZE"))

    counts = (
        await db.execute(
            text(
                "SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM categories),"
                " (SELECT count(*) FROM category_contacts), (SELECT count(*) FROM campaigns),"
                " (SELECT count(*) FROM messages), (SELECT count(*) FROM interactions)"
            )
        )
    ).one()
    return SeedReport(
        contacts=counts[0],
        categories=counts[1],
        category_contacts=counts[2],
        campaigns=counts[3],
        messages=counts[4],
        interactions=counts[5],
        seconds=time.perf_counter() - started,
    )
