"""Outgoing email: rendering, SMTP delivery and the development mailbox."""
