"""The worker process: `herald worker` runs `python -m dramatiq app.worker.process`.

Dramatiq's CLI imports this module and runs the broker it leaves as Dramatiq's global
one; `herald dev` builds the same broker in its own process (app/actors.py).
"""

from __future__ import annotations

import dramatiq

from app.actors import build_worker_broker
from app.config import get_settings
from app.observability.filters import install_phone_masking

# Workers log phone numbers' messages too (send failures, invalid numbers): mask them.
install_phone_masking()
dramatiq.set_broker(build_worker_broker(get_settings()))
