"""kbo's mail: when a result deserves a report, the digest, and the outbox that sends them."""
