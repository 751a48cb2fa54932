"""The audit trail: security-relevant events, written in the transaction of the change."""
