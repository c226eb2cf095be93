"""The wake-up channels: a transaction that queues work names one (`Bound.nudge`) and the
workers of every relay sharing the store listen on it (`Coordination.wakeups`)."""

from __future__ import annotations

from typing import Final

#: A stored inbound message: intake.
INTAKE: Final = "mailrelay_intake"
#: A queued outgoing mail, or a new review (its ticket): the dispatcher.
DISPATCH: Final = "mailrelay_dispatch"
#: A queued webhook POST: the webhook worker.
WEBHOOKS: Final = "mailrelay_webhooks"
