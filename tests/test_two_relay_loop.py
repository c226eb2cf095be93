"""Issue 15's "done when": two `mailrelay serve` processes, set up as README "Deployment → Two
relays and one PostgreSQL" says (one database, each relay its own relay_id, listeners and key
file), run the whole loop with the steps spread over them: the trigger reaches relay A, the
invitation leaves from either, the customer's form comes from B and is posted to A, the ticket
goes out, the agent's reply arrives in the IMAP mailbox (pymap) that one relay watches, and the
customer's copy goes out; the answer is on both relays' public pages, each mail sent once."""

from __future__ import annotations

import asyncio
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib
import pytest

from .conftest import ConfigFactory
from .imap_servers import ImapServer
from .mailtools import customer_mails, eventually, free_port, mails_to, parsed, text_of, trigger
from .serve_process import Serve, reaping, relays_toml
from .sink import Sink
from .tickets import AGENT, Ticketed, agent_reply
from .web_forms import csrf_of

pytestmark = pytest.mark.postgresql

CUSTOMER = "jane@example.com"
WATCHING = "this relay now watches the IMAP mailbox"
STANDING_BY = "this relay stands by: another relay watches the IMAP mailbox"


class Relay:
    """One relay of the pair: its relay.toml, its listeners' ports and its process."""

    def __init__(self, text: str, tmp_path: Path, name: str) -> None:
        self.name = name
        self.smtp_port, self.http_port = free_port(), free_port()
        # The lines README says differ between relays; the rest of relay.toml is the same.
        text = text.replace("[store]\n", f'[store]\nrelay_id = "{name}"\n', 1)
        text = text.replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{self.smtp_port}"', 1)
        text = text.replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{self.http_port}"', 1)
        # A key file of its own too: B takes A's links only by the key shared in the database.
        text = text.replace('secret_file = "var/secret.key"', f'secret_file = "var/{name}.key"')
        self.config = tmp_path / f"{name}.toml"
        self.config.write_text(text)
        self.log = tmp_path / f"{name}.log"
        self.serve: Serve | None = None

    def start(self, daemons: list[Serve]) -> Serve:
        self.serve = Serve(self.config, self.log)
        daemons.append(self.serve)
        return self.serve

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


async def json_of(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        return await resp.json()


async def review_on_b_posted_to_a(http: aiohttp.ClientSession, a: Relay, b: Relay,
                                  token: str) -> None:
    """The customer opens the link on relay B; the form goes back to relay A."""
    async with http.get(f"{b.web}/r/{token}") as resp:
        assert resp.status == 200
        csrf = csrf_of(await resp.text())
    fields = {"csrf": csrf, "stars": "2", "title": "Late", "name": "Jane Doe",
              "text": "The parcel took two weeks to arrive."}
    async with http.post(f"{a.web}/r/{token}", data=fields, allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()


def only_mail_to(sink: Sink, address: str) -> EmailMessage:
    [mail] = mails_to(sink, address)
    return mail


async def test_two_relays_run_the_whole_loop_with_the_steps_spread_over_both(
    make_config: ConfigFactory, pymap: ImapServer, sink: Sink, tmp_path: Path,
) -> None:
    text = relays_toml(make_config(more=pymap.toml()), sink.port)
    text = text.replace('invite_delay = "7d"', 'invite_delay = "2s"', 1)
    a, b = Relay(text, tmp_path, "relay-a"), Relay(text, tmp_path, "relay-b")
    with reaping() as daemons:
        await a.start(daemons).ready()
        await b.start(daemons).ready()
        await eventually(lambda: WATCHING in a.log.read_text(), limit=10, what="A watches")
        await eventually(lambda: STANDING_BY in b.log.read_text(), limit=10, what="B stands by")

        # The trigger to relay A; the invitation after the 2 s delay, from either relay.
        await aiosmtplib.send(trigger(to=f"Jane Doe <{CUSTOMER}>"),
                              sender="platform@shop.example",
                              recipients=["reviews+acme@relay.test"],
                              hostname="127.0.0.1", port=a.smtp_port, timeout=10)
        await eventually(lambda: len(mails_to(sink, CUSTOMER)) == 1, limit=20,
                         what="the invitation")
        invitation = only_mail_to(sink, CUSTOMER)
        token = re.search(r"http://reviews\.test/r/([A-Za-z0-9_-]+)", text_of(invitation))
        assert token, text_of(invitation)

        async with aiohttp.ClientSession() as http:
            await review_on_b_posted_to_a(http, a, b, token.group(1))
            await eventually(lambda: len(mails_to(sink, AGENT)) == 1, limit=20,
                             what="the ticket")
            ticket = only_mail_to(sink, AGENT)
            assert "The parcel took two weeks to arrive." in text_of(ticket)

            # The agent answers by mail into the mailbox relay A watches.
            reviewed = Ticketed(int(str(ticket["X-Mailrelay-Review"])), ticket,
                                str(invitation["Message-ID"]))
            await pymap.append(agent_reply(reviewed, "Sorry for the delay, Jane! We refunded "
                                           "the shipping."))
            await eventually(lambda: len(customer_mails(sink, CUSTOMER)) == 1, limit=20,
                             what="the answer mailed to the customer")
            [answer] = customer_mails(sink, CUSTOMER)
            assert "reply source=imap outcome=published" in a.log.read_text()  # the watcher
            assert answer["In-Reply-To"] == invitation["Message-ID"]
            assert "We refunded the shipping." in text_of(answer)

            for relay in (a, b):  # the public page and health of each relay
                page = await json_of(http, f"{relay.web}/s/acme/reviews.json")
                [review] = page["reviews"]
                assert review["response"]["text"] == (
                    "Sorry for the delay, Jane! We refunded the shipping."), relay.name
                health = await json_of(http, f"{relay.web}/healthz")
                assert (health["status"], health["database"]["backend"]) == ("ok", "postgresql")
            assert (await json_of(http, f"{b.web}/healthz"))["imap_role"] == "standby"

        await asyncio.sleep(1)  # time for a second copy of any mail, were there one
        assert [rcpts for _, rcpts, _ in sink.messages] == [[CUSTOMER], [AGENT], [CUSTOMER]]
        assert all(parsed(raw)["Message-ID"] for _, _, raw in sink.messages)
        for relay in (a, b):
            assert relay.serve is not None and await relay.serve.terminate() == 0
            assert "Traceback" not in relay.log.read_text(), relay.log.read_text()
