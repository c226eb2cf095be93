"""mailrelay: shipping emails in, customer reviews and public responses out."""

__version__ = "0.1.0"
