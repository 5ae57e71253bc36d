"""The demo data, as SQL: countries, contacts, categories, campaigns, messages, interactions.

Every statement is one INSERT ... SELECT over generate_series: PostgreSQL builds the rows
itself, so a million messages cost one round trip, not a million.
"""

from __future__ import annotations

# Mobile ranges that `phonenumbers` accepts as valid for each country. A contact's
# number is prefix || lpad(base + (k * 7919 + offset) % span, width): 7919 is prime and coprime
# with every span, so k -> number is a bijection within a country and phones stay unique.
COUNTRIES = (
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

CONTACTS = """
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
CATEGORIES = (
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

# Each campaign sends one of the simulated account's approved templates (inserted first),
# its parameters filled from the contacts' attributes or a fixed text.
# The first seven campaigns take each status once, so even a tiny seed has them all;
# the rest follow a realistic mix where most campaigns are finished. Creation dates grow
# with the id, as ids are handed out at creation (lists, recentCampaigns included, are
# newest first by id), spread over the past year; each start follows its creation.
CAMPAIGNS = """
INSERT INTO campaigns (name, template_name, template_language, template_body,
                       template_parameters, status,
                       scheduled_at, started_at, completed_at, created_at, updated_at)
SELECT
  initcap(replace(t.template_name, '_', ' ')) || ' #' || g.i,
  t.template_name, t.language, tp.body, CAST(t.parameters AS jsonb), s.status,
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
  (0, 'spring_sale', 'en', '[{"source": "attribute", "value": "first_name"},
                            {"source": "text", "value": "20"}]'),
  (1, 'order_follow_up', 'en', '[{"source": "attribute", "value": "first_name"},
                                {"source": "text", "value": "Herald Store"}]'),
  (2, 'nouvelle_collection', 'fr', '[{"source": "attribute", "value": "first_name"}]'),
  (3, 'store_event', 'en', '[{"source": "attribute", "value": "first_name"},
                            {"source": "attribute", "value": "city"}]'),
  (4, 'loyalty_reward', 'en', '[{"source": "attribute", "value": "first_name"},
                               {"source": "attribute", "value": "loyalty_points"}]'),
  (5, 'winterschlussverkauf', 'de', '[{"source": "attribute", "value": "first_name"},
                                     {"source": "text", "value": "50"}]')
) AS t(idx, template_name, language, parameters) ON t.idx = g.i % 6
-- the simulated account's templates (app/whatsapp/templates.py), inserted just before
JOIN templates AS tp ON tp.name = t.template_name AND tp.language = t.language
ORDER BY g.i
"""

CAMPAIGN_TARGETS = """
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
STARTED = "SELECT id FROM campaigns WHERE status NOT IN ('draft', 'scheduled') ORDER BY id"
# Each started campaign sends to a window of :per_campaign consecutive contacts starting at
# a campaign-specific offset; per_campaign <= contacts keeps (campaign_id, contact_id) unique.
# Message status follows the campaign: a `sending` campaign is 60% through its window (the
# rest pending, a band in flight), `paused` 40%, `cancelled` 30%, `failed` failed after 10%.
# Numbers known to be off WhatsApp fail with 131026, as the provider reports them.
MESSAGES = """
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
INTERACTIONS = """
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

OPT_OUTS = """
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
