"""The SIP I/O shell: sockets (transport.py), the core that feeds the sans-I/O
transaction layer and flushes what it returns (core.py), the router that hands
each new request to one module (router.py), the security gate (security.py)
and the appliance's SIP identity (identity.py).  Protocol logic lives in sip/."""
