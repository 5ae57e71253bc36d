"""The statements MessageRepository (app/messages/repository.py) runs for dispatch and
status webhooks: materializing, claiming, recording, deferring, reconciling, retrying.

Every status change is a conditional UPDATE, so a late, duplicate or out-of-order
writer (a webhook, a slow worker, the sweeper) can never move a message backwards.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, DateTime, Float, Integer, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY

from app.models import MessageStatus

MATERIALIZE = text(
    """
    INSERT INTO messages (campaign_id, contact_id)
    SELECT DISTINCT CAST(:campaign_id AS bigint), cc.contact_id
    FROM campaign_categories t
    JOIN category_contacts cc ON cc.category_id = t.category_id
    JOIN contacts c ON c.id = cc.contact_id
    WHERE t.campaign_id = :campaign_id
      AND c.opted_out_at IS NULL
      AND c.whatsapp_status <> 'invalid'
    ON CONFLICT (campaign_id, contact_id) DO NOTHING
    """
)

# SKIP LOCKED lets several workers claim disjoint batches of one campaign concurrently.
# `:now` is dispatch's clock (the messaging limit's): a message waiting for the window to
# slide becomes claimable on that clock; `window_open`: the contact wrote in the last 24 h.
CLAIM = text(
    """
    WITH picked AS (
        SELECT id FROM messages
        WHERE campaign_id = :campaign_id AND status = 'pending'
          AND (not_before IS NULL OR not_before <= :now)
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE messages m
    SET status = 'sending', attempts = m.attempts + 1, updated_at = now()
    FROM picked, contacts c
    WHERE m.id = picked.id AND c.id = m.contact_id
    RETURNING m.id, m.contact_id, c.phone, c.name, c.attributes,
              c.opted_out_at IS NOT NULL AS opted_out,
              c.whatsapp_status = 'invalid' AS invalid,
              coalesce(c.last_inbound_at > :now - interval '24 hours', false) AS window_open
    """
).bindparams(bindparam("now", type_=DateTime(timezone=True)))

# A webhook may have advanced the message already; keep its status, fill the id. One that
# an error webhook put back to pending already (app/http/webhooks.py) is left as it is: that
# send failed, and the message goes out again under a new id.
RECORD_SENT = text(
    """
    UPDATE messages m
    SET status = CASE WHEN m.status = 'sending' THEN 'sent' ELSE m.status END,
        provider_message_id = COALESCE(m.provider_message_id, v.pid),
        sent_at = COALESCE(m.sent_at, now()),
        updated_at = now()
    FROM unnest(:ids, :pids) AS v(id, pid)
    WHERE m.id = v.id AND m.status <> 'pending'
    """
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)), bindparam("pids", type_=ARRAY(Text)))

RECORD_FAILED = text(
    """
    UPDATE messages m
    SET status = 'failed', error = v.error, error_code = v.code, failed_at = now(),
        updated_at = now()
    FROM unnest(:ids, :errors, :codes) AS v(id, error, code)
    WHERE m.id = v.id AND m.status = 'sending'
    """
).bindparams(
    bindparam("ids", type_=ARRAY(BigInteger)),
    bindparam("errors", type_=ARRAY(Text)),
    bindparam("codes", type_=ARRAY(Integer)),
)

# Retry-later: back to pending, not claimed before its wait (`delay` seconds, times `grow`
# per earlier deferral, at most 5 minutes), not counted as handed over; failed with its
# error instead once deferred `allowed` times.
DEFER = text(
    """
    UPDATE messages m
    SET status = CASE WHEN m.deferrals < v.allowed THEN 'pending' ELSE 'failed' END,
        not_before = CASE WHEN m.deferrals < v.allowed
            THEN now() + make_interval(secs => least(v.delay * power(v.grow, m.deferrals), 300))
            END,
        deferrals = m.deferrals + 1,
        attempts = CASE WHEN m.deferrals < v.allowed THEN m.attempts - 1 ELSE m.attempts END,
        error = CASE WHEN m.deferrals < v.allowed THEN NULL ELSE v.error END,
        error_code = CASE WHEN m.deferrals < v.allowed THEN NULL ELSE v.code END,
        failed_at = CASE WHEN m.deferrals < v.allowed THEN NULL ELSE now() END,
        updated_at = now()
    FROM unnest(:ids, :delays, :grows, :alloweds, :errors, :codes)
        AS v(id, delay, grow, allowed, error, code)
    WHERE m.id = v.id AND m.status = 'sending'
    RETURNING m.status
    """
).bindparams(
    bindparam("ids", type_=ARRAY(BigInteger)),
    bindparam("delays", type_=ARRAY(Float)),
    bindparam("grows", type_=ARRAY(Float)),
    bindparam("alloweds", type_=ARRAY(Integer)),
    bindparam("errors", type_=ARRAY(Text)),
    bindparam("codes", type_=ARRAY(Integer)),
)

NEXT_DUE = text(
    """
    SELECT extract(epoch FROM min(not_before) - :now) FROM messages
    WHERE campaign_id = :campaign_id AND status = 'pending' AND not_before > :now
    """
).bindparams(bindparam("now", type_=DateTime(timezone=True)))

# Refused by the messaging limit: back to pending, not claimed before its slot frees; not
# an attempt and not a deferral (no retry allowance is spent waiting for the window).
WAIT_FOR_WINDOW = text(
    """
    UPDATE messages m
    SET status = 'pending', attempts = m.attempts - 1, not_before = v.at, updated_at = now()
    FROM unnest(:ids, :ats) AS v(id, at)
    WHERE m.id = v.id AND m.status = 'sending'
    """
).bindparams(
    bindparam("ids", type_=ARRAY(BigInteger)),
    bindparam("ats", type_=ARRAY(DateTime(timezone=True))),
)

# Who was reached in the window, as far as PostgreSQL knows: sent since `:since`, by phone,
# at the last send (Unix ms). Seeds the reach set. Not what is `sending`: claimed messages
# wait there for their reservation (sends in flight are added again as they are recorded).
REACHED_SINCE = text(
    """
    SELECT c.phone, floor(extract(epoch FROM max(m.sent_at)) * 1000)::bigint
    FROM messages m JOIN contacts c ON c.id = m.contact_id
    WHERE m.sent_at > :since
    GROUP BY c.phone
    """
).bindparams(bindparam("since", type_=DateTime(timezone=True)))

# Pending messages of each campaign whose contact's customer-service window is open: from
# the (few) contacts who wrote in the last 24 hours, not from the campaign's messages.
OPEN_WINDOW_PENDING = text(
    """
    SELECT m.campaign_id, count(*)
    FROM contacts c JOIN messages m ON m.contact_id = c.id
    WHERE c.last_inbound_at > :now - interval '24 hours'
      AND m.campaign_id = ANY(:ids) AND m.status = 'pending'
    GROUP BY m.campaign_id
    """
).bindparams(
    bindparam("ids", type_=ARRAY(BigInteger)), bindparam("now", type_=DateTime(timezone=True))
)

# Claimed but never handed to the provider (the worker hit an error first): claimable again.
RELEASE = text(
    """
    UPDATE messages
    SET status = 'pending', attempts = attempts - 1, updated_at = now()
    WHERE id = ANY(:ids) AND status = 'sending'
    """
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))

OPEN_COUNTS = text(
    """
    SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
           count(*) FILTER (WHERE status = 'sending') AS sending
    FROM messages
    WHERE campaign_id = :campaign_id AND status IN ('pending', 'sending')
    """
)

# A message left `sending` past the sending timeout has an unknown fate: its worker died
# between claiming and recording it. Status webhooks (matched by the id echoed in
# biz_opaque_callback_data) settle most of them during the grace period; after it, a
# message handed over once goes back to pending (one automatic re-send), and one already
# re-sent is failed "unknown". Without webhooks nothing can settle them: failed "unknown".
RECONCILE = text(
    """
    WITH unknown AS (
        SELECT id, attempts FROM messages
        WHERE campaign_id = :campaign_id AND status = 'sending'
          AND updated_at < now() - make_interval(secs => :older_than)
        FOR UPDATE SKIP LOCKED
    )
    UPDATE messages m
    SET status = CASE WHEN :resend AND u.attempts <= 1 THEN 'pending' ELSE 'failed' END,
        error = CASE WHEN :resend AND u.attempts <= 1 THEN NULL ELSE 'unknown' END,
        failed_at = CASE WHEN :resend AND u.attempts <= 1 THEN NULL ELSE now() END,
        updated_at = now()
    FROM unknown u
    WHERE m.id = u.id
    RETURNING m.status
    """
)

FAIL_PENDING = text(
    """
    UPDATE messages
    SET status = 'failed', error = :reason, failed_at = now(), updated_at = now()
    WHERE campaign_id = :campaign_id AND status = 'pending'
    """
)

# Undeliverable numbers and opted-out contacts are never retried; messages failed with
# `:held_code` (the per-user marketing limit) are not within 24 hours of their failure.
RETRY_FAILED = text(
    """
    UPDATE messages m
    SET status = 'pending', error = NULL, error_code = NULL, failed_at = NULL,
        not_before = NULL, deferrals = 0, updated_at = now()
    FROM contacts c
    WHERE m.campaign_id = :campaign_id AND m.status = 'failed'
      AND c.id = m.contact_id AND c.opted_out_at IS NULL AND c.whatsapp_status <> 'invalid'
      AND NOT (m.error_code IS NOT DISTINCT FROM CAST(:held_code AS integer)
               AND m.failed_at > now() - interval '24 hours')
    """
)

HELD_BACK = text(
    """
    SELECT count(*) FROM messages
    WHERE campaign_id = :campaign_id AND status = 'failed' AND error_code = :held_code
      AND failed_at > now() - interval '24 hours'
    """
)

CAMPAIGNS_WITH_SENDING = text("SELECT DISTINCT campaign_id FROM messages WHERE status = 'sending'")

# Match by the provider's id, or by our id echoed in biz_opaque_callback_data when the
# worker died before recording the provider's id.
MATCH = "(provider_message_id = :wamid OR (id = :message_id AND provider_message_id IS NULL))"

TIMESTAMPS = {
    MessageStatus.SENT: "sent_at = COALESCE(sent_at, CAST(:at AS timestamptz))",
    MessageStatus.DELIVERED: "sent_at = COALESCE(sent_at, CAST(:at AS timestamptz)), "
    "delivered_at = COALESCE(delivered_at, :at)",
    MessageStatus.READ: "sent_at = COALESCE(sent_at, CAST(:at AS timestamptz)), "
    "delivered_at = COALESCE(delivered_at, :at), read_at = COALESCE(read_at, :at)",
}
ADVANCES_FROM = {
    MessageStatus.SENT: "('pending', 'sending')",
    MessageStatus.DELIVERED: "('pending', 'sending', 'sent', 'failed')",
    MessageStatus.READ: "('pending', 'sending', 'sent', 'delivered', 'failed')",
}
STATUS_UPDATES = {
    status: text(
        f"""
        UPDATE messages
        SET status = CASE WHEN status IN {ADVANCES_FROM[status]}
                          THEN CAST(:status AS varchar) ELSE status END,
            provider_message_id = COALESCE(provider_message_id, :wamid),
            {TIMESTAMPS[status]},
            updated_at = now()
        WHERE {MATCH}
        RETURNING campaign_id, contact_id
        """
    )
    for status in ADVANCES_FROM
}
STATUS_UPDATES[MessageStatus.FAILED] = text(
    f"""
    UPDATE messages
    SET status = 'failed', error = :error, error_code = :code, failed_at = :at,
        updated_at = now(), provider_message_id = COALESCE(provider_message_id, :wamid)
    WHERE {MATCH} AND status IN ('pending', 'sending', 'sent')
    RETURNING campaign_id, contact_id
    """
)

# An error webhook whose class sends the message again (retry-later, slow-down, campaign-
# stopping): back to pending without the failed send's id, while its campaign may still
# send and it has deferrals left (`:defer` counts one); else nothing, and it fails.
REQUEUE = text(
    """
    UPDATE messages m
    SET status = 'pending', provider_message_id = NULL, sent_at = NULL,
        not_before = now() + make_interval(secs => :delay),
        deferrals = m.deferrals + CAST(:defer AS integer), updated_at = now()
    FROM campaigns c
    WHERE (m.provider_message_id = :wamid
           OR (m.id = :message_id AND m.provider_message_id IS NULL))
      AND m.status IN ('sending', 'sent') AND c.id = m.campaign_id
      AND c.status IN ('sending', 'paused') AND m.deferrals + :defer <= :allowed
    RETURNING m.campaign_id, m.contact_id
    """
)

MESSAGE_BY_WAMID = text(
    "SELECT id, contact_id, campaign_id FROM messages WHERE provider_message_id = :wamid"
)
LATEST_MESSAGE_TO = text(
    """
    SELECT m.id, m.contact_id, m.campaign_id
    FROM messages m JOIN contacts c ON c.id = m.contact_id
    WHERE c.phone = :phone
    ORDER BY m.id DESC
    LIMIT 1
    """
)
