"""What a shop's own site fetches from us: the embeds and every JSON route under /s/<shop>/.

One aiohttp middleware gives them an `ETag` (from the shop's review revision, known before
anything is rendered), `304` to a matching `If-None-Match`, an in-memory cache of rendered
bodies, and CORS for the shop's `embed_origins` (JSON routes only). Routes added later under
/s/<shop>/….json get all of it without knowing about it.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import hdrs, web

from mailrelay import __version__
from mailrelay.config import Config, ShopConfig
from mailrelay.edges.web.revisions import ShopRevisions

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: A JSON route of a shop, whoever registered it (for preflights, which match no route).
JSON_PATH = re.compile(r"/s/[^/]+/.+\.json")
#: Revalidate on every use: the 304 is cheap, and a change shows at once.
DEFAULT_CACHE_CONTROL = "public, no-cache"
#: Headers a 304 repeats from the 200 it stands for (RFC 9110 §15.4.5).
REPEATED = (hdrs.CACHE_CONTROL, hdrs.CONTENT_SECURITY_POLICY, hdrs.VARY, hdrs.CONTENT_LANGUAGE)
PREFLIGHT_MAX_AGE = "600"


@dataclass(frozen=True, slots=True)
class Rendered:
    """A 200 as first rendered: its body and headers (without length)."""

    body: bytes
    headers: tuple[tuple[str, str], ...]


class BodyCache:
    """Rendered bodies by (route, shop, parameters, revision), least recently used out first,
    within a byte budget."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[str, Rendered] = OrderedDict()

    def get(self, key: str) -> Rendered | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Rendered) -> None:
        if len(entry.body) > self.max_bytes // 16:
            return
        old = self._entries.pop(key, None)
        self.size += len(entry.body) - (len(old.body) if old else 0)
        self._entries[key] = entry
        while self.size > self.max_bytes:
            _key, dropped = self._entries.popitem(last=False)
            self.size -= len(dropped.body)


def etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match's weak comparison (RFC 9110 §13.1.2): `*` or any listed tag."""
    if not header:
        return False
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def _shop_mark(shop: ShopConfig) -> str:
    """What of the configuration a page shows (name, colour, locale…): in every ETag, so a
    changed setting is never answered with an old 304."""
    return hashlib.blake2b(f"{__version__}|{shop!r}".encode(), digest_size=8).hexdigest()


class EmbedCache:
    """The middleware; `embed_routes` are the canonical paths of the embeds (widget, badge)."""

    def __init__(self, config: Config, read_revision: Callable[[str], Awaitable[str]],
                 embed_routes: Iterable[str]) -> None:
        self.config = config
        self.revisions = ShopRevisions(read_revision)
        self.embed_routes = frozenset(embed_routes)
        self.bodies = BodyCache()
        self._marks = {shop.id: _shop_mark(shop) for shop in config.shops}
        # Browsers send scheme and host in lower case; the config may not have them so.
        self._origins = {shop.id: frozenset(origin.lower() for origin in shop.embed_origins)
                         for shop in config.shops}
        #: Each route's headers per shop as last rendered, for the 304s that stand for it
        #: (per shop: one shop's frame-ancestors must never reach another's widget).
        self._repeated: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}

    def _is_json(self, canonical: str) -> bool:
        return canonical.startswith("/s/{shop}/") and canonical.endswith(".json")

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == hdrs.METH_OPTIONS and JSON_PATH.fullmatch(request.path):
            return self._preflight(request)
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else ""
        is_json = self._is_json(canonical)
        shop = self.config.shop(request.match_info.get("shop", ""))
        if (shop is None or request.method not in (hdrs.METH_GET, hdrs.METH_HEAD)
                or not (is_json or canonical in self.embed_routes)):
            return await handler(request)
        cors = self._cors(request, shop) if is_json else {}
        revision = await self.revisions.get(shop.id)
        key = "\x1f".join((canonical, repr(sorted(request.match_info.items())),
                           repr(sorted(request.query.items())), revision, self._marks[shop.id]))
        etag = '"' + hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + '"'
        if etag_matches(request.headers.get(hdrs.IF_NONE_MATCH), etag):
            repeated = self._repeated.get((canonical, shop.id),
                                          ((hdrs.CACHE_CONTROL, DEFAULT_CACHE_CONTROL),))
            return web.Response(status=304, headers={**dict(repeated), **cors,
                                                     hdrs.ETAG: etag})
        entry = self.bodies.get(key)
        if entry is None:
            response = await handler(request)
            if not (isinstance(response, web.Response) and response.status == 200
                    and isinstance(response.body, bytes)):
                response.headers.update(cors)
                return response
            response.headers.setdefault(hdrs.CACHE_CONTROL, DEFAULT_CACHE_CONTROL)
            entry = Rendered(response.body, tuple(
                (name, value) for name, value in response.headers.items()
                if name != hdrs.CONTENT_LENGTH))
            self.bodies.put(key, entry)
            self._repeated[canonical, shop.id] = tuple(
                (name, value) for name, value in entry.headers if name in REPEATED)
        return web.Response(body=entry.body, headers={**dict(entry.headers), **cors,
                                                      hdrs.ETAG: etag})

    def _cors(self, request: web.Request, shop: ShopConfig) -> dict[str, str]:
        """Only an origin the shop listed may read its JSON; caches keep answers apart."""
        headers: dict[str, str] = {hdrs.VARY: "Origin"}
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and origin.lower() in self._origins[shop.id]:
            headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = "ETag"
        return headers

    def _preflight(self, request: web.Request) -> web.Response:
        """A fetch that sends If-None-Match itself asks first (it is not a simple header)."""
        shop = self.config.shop(request.path.split("/")[2])
        if shop is None:
            raise web.HTTPNotFound()
        headers = self._cors(request, shop)
        if hdrs.ACCESS_CONTROL_ALLOW_ORIGIN in headers:
            headers.update({hdrs.ACCESS_CONTROL_ALLOW_METHODS: "GET, HEAD",
                            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: "If-None-Match",
                            hdrs.ACCESS_CONTROL_MAX_AGE: PREFLIGHT_MAX_AGE})
        return web.Response(status=204, headers=headers)
