"""The exception tree. Callers catch the narrowest class; only mailer.py maps SMTP codes here.

MailrelayError
├── ConfigError            broken relay.toml (carries every problem at once)
├── UserError              a CLI user's mistake: one-line reason, exit status 1
├── StoreError             the database refused a write or read
├── ParseError             an input we cannot make sense of (recorded, never fatal)
└── DeliveryFailure
    ├── TemporaryFailure   retry later (4xx, connection trouble)
    └── PermanentFailure   give up now (5xx)
"""

from __future__ import annotations

from dataclasses import dataclass


class MailrelayError(Exception):
    """Root of every error mailrelay raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a config file: which key, on which line, and what is wrong."""

    key: str
    message: str
    line: int | None = None
    path: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else (self.path or "config")
        return f"{where}: {self.key}: {self.message}"


class ConfigError(MailrelayError):
    """The configuration is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class UserError(MailrelayError):
    """A mistake in what the user asked for (unknown id, bad date): exit status 1."""


class StoreError(MailrelayError):
    """The store could not complete an operation."""



class DuplicateKey(StoreError):
    """A row with this natural key exists already (a Message-ID, an order reference): the
    backend's unique constraint caught a race the checks before it could not see."""


class StoreUnavailable(StoreError):
    """The database cannot write now (a full disk, an I/O error): not the data's fault, so
    the work stays pending and is tried again later."""


class StoreUnreachable(StoreUnavailable):
    """No connection to the database server: it is down, restarting, failing over, out of
    connections or unreachable, or it refused the login (at connect libpq gives no SQLSTATE
    to tell these apart). A relay starting now cannot open its store; one starting later may."""

class ParseError(MailrelayError):
    """Input that cannot be interpreted; recorded as a defect, never a crash."""


class DeliveryFailure(MailrelayError):
    """Sending a message failed; `reply` is what the server said, if anything."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        super().__init__(reply)


class TemporaryFailure(DeliveryFailure):
    """Try again later: 4xx replies, timeouts, refused or dropped connections."""


class PermanentFailure(DeliveryFailure):
    """Do not try again: 5xx replies."""
