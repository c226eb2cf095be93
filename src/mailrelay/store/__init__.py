"""The store: the only SQL in mailrelay. Services pass functions that receive a `Queries`
object; the one writer thread runs many of them inside one transaction (group commit).

`interface` says what any backend must offer (`StoreBackend`, `QueryInterface`): all that
mailrelay outside the store names; everything else here is the SQLite one (`Store` and
`Queries` are exported for the tests and benches).
"""

from mailrelay.store.addresses import (
    address_hash,
    address_pattern,
    address_pattern_bytes,
    address_ref,
)
from mailrelay.store.database import Store
from mailrelay.store.interface import QueryInterface, StoreBackend
from mailrelay.store.open import open_store
from mailrelay.store.queries import Queries
from mailrelay.store.rows import (
    AuditEntry,
    CustomerContext,
    DecisionFacts,
    DueInvitation,
    Erasure,
    ImapSeenRow,
    InboundMessage,
    InboxFilter,
    InboxPage,
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
    ReportRow,
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
    "AuditEntry",
    "ReportRow",
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
    "InboxFilter",
    "InboxPage",
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
    "QueryInterface",
    "ReplyKeyRow",
    "ReplyRow",
    "ResponseRow",
    "ReviewRow",
    "ReviewText",
    "ShipmentRow",
    "Store",
    "StoreBackend",
    "address_hash",
    "address_pattern",
    "address_pattern_bytes",
    "address_ref",
    "from_iso",
    "migrate",
    "open_store",
    "to_iso",
]
