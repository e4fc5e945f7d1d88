"""RADIUS accounting (RFC 2866) of calls: packet codec (packet.py), CDR to
attributes (records.py), the crash-safe backlog on flash (journal.py), the
sans-I/O client with retransmission and failover (client.py) and the I/O
shell and console (service.py).  See docs/radius.md."""
