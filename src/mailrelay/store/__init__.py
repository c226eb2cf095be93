"""The store: the only SQL in mailrelay. Services pass functions that receive a `Queries`
object; the one writer thread runs many of them inside one transaction (group commit).

`interface` says what any backend must offer; everything else here is the SQLite one.
"""

from mailrelay.store.addresses import (
    address_hash,
    address_pattern,
    address_pattern_bytes,
    address_ref,
)
from mailrelay.store.database import Store
from mailrelay.store.queries import Queries
from mailrelay.store.rows import (
    CustomerContext,
    DecisionFacts,
    DueInvitation,
    Erasure,
    ImapSeenRow,
    InboundMessage,
    InvitationRow,
    MailListing,
    NewInvitation,
    NewMail,
    NewMessage,
    NewProductReview,
    NewReply,
    NewReview,
    NewShipment,
    NoteRow,
    OutboxRow,
    ProductFigures,
    ProductReviewListing,
    ProductReviewRow,
    RatingSummary,
    ReplyKeyRow,
    ReplyRow,
    ResponseRow,
    ReviewRow,
    ReviewText,
    ShipmentRow,
    ShopStats,
    UserListing,
    UserRow,
)
from mailrelay.store.schema import MIGRATIONS, migrate
from mailrelay.store.suppressions import SUPPRESSION_TEXT
from mailrelay.store.timestamps import from_iso, to_iso

__all__ = [
    "CustomerContext",
    "RatingSummary",
    "ShopStats",
    "UserListing",
    "UserRow",
    "MIGRATIONS",
    "SUPPRESSION_TEXT",
    "DecisionFacts",
    "DueInvitation",
    "Erasure",
    "ImapSeenRow",
    "InboundMessage",
    "InvitationRow",
    "MailListing",
    "NewInvitation",
    "NewMail",
    "NewMessage",
    "NewProductReview",
    "NewReply",
    "NewReview",
    "NewShipment",
    "NoteRow",
    "OutboxRow",
    "ProductFigures",
    "ProductReviewListing",
    "ProductReviewRow",
    "Queries",
    "ReplyKeyRow",
    "ReplyRow",
    "ResponseRow",
    "ReviewRow",
    "ReviewText",
    "ShipmentRow",
    "Store",
    "address_hash",
    "address_pattern",
    "address_pattern_bytes",
    "address_ref",
    "from_iso",
    "migrate",
    "to_iso",
]
