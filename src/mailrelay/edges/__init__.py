"""The protocol edges: SMTP, IMAP, HTTP, outbound mail and the clock's jobs.

They translate protocol into service calls and back; they decide nothing."""
