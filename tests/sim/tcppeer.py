"""A minimal peer call server over TCP on the simulated network (tests only):
accepts connections, frames SIP messages (sip.message.StreamFramer) and
answers every request statelessly over the connection it came on: REGISTER
200 with the Contact (bindings kept, no digest), anything else 200.

    peer = TcpPeer(net, "192.0.2.30"); port = peer.start(app.sched)
    peer.accepted (connections accepted), peer.log [(method, transport of top Via)]
    peer.drop_connections()    close every connection from the server side
"""
import socket

from sip.message import StreamFramer, parse
from sip.transport import stateless_response
from firmware.sched import RESTART


class TcpPeer:
    def __init__(self, net, host):
        self.net = net
        self.host = host
        self.accepted = 0
        self.conns = []
        self.log = []
        self.bindings = {}
        self.sock = None
        self.port = None
        self.sched = None

    def start(self, sched):
        self.sched = sched
        if self.net.host_of(self.host) is None:
            self.net.add_host("tcppeer-" + self.host, self.host)
        s = self.net.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((self.host, 0))
        s.listen(8)
        s.setblocking(False)
        self.sock = s
        self.port = s.getsockname()[1]
        sched.spawn(self._accept, "tcppeer-accept", RESTART)
        return self.port

    async def _accept(self):
        while True:
            await self.sock.wait_readable()
            while True:
                try:
                    c, addr = self.sock.accept()
                except OSError:
                    break
                c.setblocking(False)
                self.accepted += 1
                self.conns.append(c)
                self.sched.spawn(self._serve(c), "tcppeer-conn")

    async def _serve(self, c):
        framer = StreamFramer()
        while True:
            try:
                await c.wait_readable()
                data = c.recv(65536)
            except OSError:
                return
            if not data:
                return
            for m in framer.feed(data):
                msg = parse(m)
                if not msg.is_request:
                    continue
                self.log.append((msg.method, msg.top_via.transport))
                hdrs = []
                if msg.method == "REGISTER":
                    for ct in msg.contact:
                        if ct != "*":
                            self.bindings[msg.to.uri.user] = str(ct.uri)
                            hdrs.append(("Contact", "<%s>;expires=600" % ct.uri))
                if msg.method != "ACK":
                    try:
                        c.send(stateless_response(msg, 200, None, hdrs).serialize())
                    except OSError:
                        return

    def drop_connections(self):
        for c in self.conns:
            c.close()
        self.conns = []

    def close(self):
        self.drop_connections()
        if self.sock is not None:
            self.sock.close()
