"""Sans-I/O SIP for the branch voice appliance.

Message layer: `sip.errors`, `sip.uri`, `sip.message`, `sip.sdp`, `sip.digest`.
Transactions, dialogs and the UA sit on top (`sip.transaction`, `sip.dialog`).
Nothing here reads a clock, touches a socket or imports `firmware`.
"""
