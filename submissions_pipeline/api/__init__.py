"""The signed webhook API (inbound triggers) and the outbox dispatcher (outbound events)."""
