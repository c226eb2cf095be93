"""The line that opens every ticket: render writes it, reply_text cuts replies at it.

A constant only, so the pure reply_text package needs nothing from render.
"""

from __future__ import annotations

from typing import Final

__all__ = ["REPLY_MARKER"]

# The first line of every ticket's text part (and, small and grey, of its HTML part). The reply
# parser cuts an agent's reply at this line before it looks for any other quoted history.
REPLY_MARKER: Final = "##- Please type your reply above this line -##"
