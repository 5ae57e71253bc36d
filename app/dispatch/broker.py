"""The broker's Redis namespace, for app/cache.py's import only: the broker is app/worker/."""

from app.worker.broker import NAMESPACE

__all__ = ["NAMESPACE"]
