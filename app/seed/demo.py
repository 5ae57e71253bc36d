"""The size of the demo data the first `herald dev` loads (and `herald seed`'s defaults)."""

# Enough to page through, small enough to load in a second.
DEMO_CONTACTS = 2_000
DEMO_CAMPAIGNS = 12
DEMO_MESSAGES_PER_CAMPAIGN = 500
