"""A RADIUS accounting server on the simulated network (tests/sim/simnet.py)
for simulation tests: it decodes each request with pyrad (an independent
implementation), verifies the Request Authenticator with its secret, keeps
what arrived, and answers with pyrad's Accounting-Response unless it is down.
"""
import os
import tempfile

from pyrad import dictionary, packet as pp

# the attributes the appliance sends, in pyrad's dictionary format (RFC 2865/2866, Cisco 9)
DICT = """
ATTRIBUTE User-Name 1 string
ATTRIBUTE NAS-IP-Address 4 ipaddr
ATTRIBUTE Vendor-Specific 26 octets
ATTRIBUTE Called-Station-Id 30 string
ATTRIBUTE Calling-Station-Id 31 string
ATTRIBUTE NAS-Identifier 32 string
ATTRIBUTE Acct-Status-Type 40 integer
ATTRIBUTE Acct-Delay-Time 41 integer
ATTRIBUTE Acct-Session-Id 44 string
ATTRIBUTE Acct-Session-Time 46 integer
ATTRIBUTE Acct-Terminate-Cause 49 integer
ATTRIBUTE Event-Timestamp 55 date
ATTRIBUTE NAS-Port-Type 61 integer
VALUE Acct-Status-Type Start 1
VALUE Acct-Status-Type Stop 2
VALUE Acct-Status-Type Interim-Update 3
VALUE Acct-Terminate-Cause User-Request 1
VALUE Acct-Terminate-Cause Idle-Timeout 4
VALUE Acct-Terminate-Cause Session-Timeout 5
VALUE Acct-Terminate-Cause Admin-Reboot 7
VALUE Acct-Terminate-Cause NAS-Error 9
VALUE Acct-Terminate-Cause NAS-Reboot 11
VALUE Acct-Terminate-Cause Host-Request 18
VENDOR Cisco 9
BEGIN-VENDOR Cisco
ATTRIBUTE Cisco-AVPair 1 string
END-VENDOR Cisco
"""

_DICT = []


def radius_dictionary():
    """pyrad's Dictionary of DICT (built once)."""
    if not _DICT:
        fd, path = tempfile.mkstemp(suffix=".dict")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(DICT)
            _DICT.append(dictionary.Dictionary(path))
        finally:
            os.remove(path)
    return _DICT[0]


class Arrived:
    """One request as the server saw it."""

    def __init__(self, at, pkt):
        self.at = at
        self.id = pkt.id
        self.status = pkt["Acct-Status-Type"][0]
        self.sid = pkt["Acct-Session-Id"][0]
        self.delay = pkt["Acct-Delay-Time"][0] if "Acct-Delay-Time" in pkt else None
        self.pkt = pkt

    def key(self):
        return (self.sid, self.status)

    def __repr__(self):
        return "<%s %s id %d delay %s at %d>" % (self.status, self.sid, self.id, self.delay, self.at)


class SimRadiusServer:
    def __init__(self, net, sched, addr, secret, port=1813):
        self.sched = sched
        self.secret = secret
        self.up = True
        self.arrived = []       # every request (retransmissions included)
        self.answered = []      # the requests answered
        self.refused = 0        # Request Authenticator did not verify
        self.sock = net.socket(2, 2)
        self.sock.bind((addr, port))
        self.sock.setblocking(False)
        self.task = sched.spawn(self._run(), "radius-server-%s" % addr)

    async def _run(self):
        d = radius_dictionary()
        while True:
            await self.sock.wait_readable()
            while True:
                try:
                    data, src = self.sock.recvfrom(4096)
                except OSError:
                    break
                pkt = pp.AcctPacket(packet=data, secret=self.secret, dict=d)
                if not pkt.VerifyAcctRequest():
                    self.refused += 1
                    continue
                a = Arrived(self.sched.clock.now(), pkt)
                self.arrived.append(a)
                if self.up:
                    self.answered.append(a)
                    self.sock.sendto(pkt.CreateReply().ReplyPacket(), src)

    def unique(self):
        """The answered requests, each record once (as a server that dedupes
        on Acct-Session-Id + status would keep them), in arrival order."""
        seen = set()
        out = []
        for a in self.answered:
            k = (a.sid, a.status, a.pkt.get("Acct-Session-Time", [None])[0])
            if k not in seen:
                seen.add(k)
                out.append(a)
        return out
