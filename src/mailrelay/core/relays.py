"""Which relay this process is when several share one store (issue 15): the name its claims on
outbox rows, inbound messages and daily jobs carry."""

from __future__ import annotations

import socket
from datetime import timedelta

#: How long a relay's claim on a piece of work keeps the other relays off it (a message it
#: accepted, mail it is sending, invitations it renders); then its relay is taken to be gone.
LEASE = timedelta(minutes=5)


def local_relay_id() -> str:
    """The host's name: stable across restarts, so a relay finds its own interrupted claims.
    Two relays on one host need distinct names given to them."""
    return socket.gethostname()
