"""Every email we send (invitation, reminder, ticket, response, refusal notice) as exact bytes,
from a typed view the caller builds; the Jinja2 templates behind them. Never sends, never stores.
"""

from mailrelay.render.headers import clean_header, new_message_id
from mailrelay.render.invitation import invitation_mail
from mailrelay.render.message import RenderedMail
from mailrelay.render.notice import notice_mail
from mailrelay.render.response import auto_response_text, response_mail
from mailrelay.render.templates import (
    Templates,
    WebTemplates,
    normalize_locale,
    web_environment,
)
from mailrelay.render.threads import thread_index
from mailrelay.render.ticket import ticket_mail
from mailrelay.render.views import (
    InvitationView,
    NoticeView,
    ResponseView,
    ReviewView,
    TicketView,
)

__all__ = [
    "InvitationView",
    "NoticeView",
    "RenderedMail",
    "ResponseView",
    "ReviewView",
    "Templates",
    "TicketView",
    "WebTemplates",
    "auto_response_text",
    "clean_header",
    "invitation_mail",
    "new_message_id",
    "normalize_locale",
    "notice_mail",
    "response_mail",
    "thread_index",
    "ticket_mail",
    "web_environment",
]
