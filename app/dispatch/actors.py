"""Dramatiq actors; `herald worker` loads this module to register them."""

from __future__ import annotations

from app.config import get_settings
from app.dispatch.broker import setup_broker

broker = setup_broker(get_settings())
