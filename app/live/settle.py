"""When a finished campaign's live figures have settled, so its progress stream may end.

Delivery and read statuses keep arriving from webhooks for seconds after a campaign's final
status: a stream that ended on that status would leave a dashboard with figures that are
already wrong. A watch ends once its figures have been still for `quiet_s` after the final
status, or `max_s` after the final status whatever still arrives (read receipts trickle in
for days; a stream is not kept open for them).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings


@dataclass
class Settling:
    """One watch's settle window, in monotonic seconds."""

    quiet_s: float
    max_s: float
    quiet_until: float | None = None  # the figures are settled if still until then
    settle_by: float | None = None  # settled then, whatever still arrives

    @classmethod
    def of(cls, settings: Settings) -> Settling:
        return cls(settings.progress_settle_s, settings.progress_settle_max_s)

    def observe(self, final: bool, changed: bool, now: float, ended_ago: float) -> bool:
        """Whether the figures read at `now` are settled: `final` when the campaign's status
        is, `changed` when its status or figures differ from the last read, `ended_ago` how
        long ago it became final (a watch may start on a campaign that ended long ago)."""
        if not final:  # not yet, or sending again (retryFailedMessages)
            self.quiet_until = self.settle_by = None
            return False
        if self.quiet_until is None or self.settle_by is None:
            self.settle_by = now + self.max_s - max(ended_ago, 0.0)
            self.quiet_until = now + self.quiet_s
        elif changed:
            self.quiet_until = now + self.quiet_s
        return now >= min(self.quiet_until, self.settle_by)

    def due(self) -> float | None:
        """When the figures will be settled if nothing changes; None while not final."""
        if self.quiet_until is None or self.settle_by is None:
            return None
        return min(self.quiet_until, self.settle_by)
