"""HTTP edge (aiohttp): the server with its routes, page texts, form reading and rate limits."""

from mailrelay.edges.web.server import WebApp

__all__ = ["WebApp"]
