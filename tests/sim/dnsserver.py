"""A small authoritative DNS server on the simulated network (tests only):
answers A, AAAA and SRV questions from a zone that tests edit while it
runs, with its own encoder (not the firmware's), and name compression in
its answers so that the firmware's decoder is exercised on it.

    dns = SimDns(net, "192.0.2.53")          # binds UDP port 53 on that host
    dns.start(app.sched)
    dns.zone["hq.example.com"] = [("A", 300, "192.0.2.10"), ("AAAA", 300, "2001:db8::10")]
    dns.zone["_sip._udp.hq.example.com"] = [("SRV", 60, (10, 60, 5070, "sip1.hq.example.com"))]
    dns.mode = "servfail" | "drop" | "answer"  # how to treat every question
    dns.asked                                 # [(name, type)] in order
"""
import socket
import struct

from firmware.sched import RESTART

TYPES = {"A": 1, "AAAA": 28, "SRV": 33, "CNAME": 5}


def _name(name, table, offset):
    """Encoded name, compressing a suffix already written (table: suffix -> offset)."""
    out = b""
    labels = name.rstrip(".").split(".")
    for k in range(len(labels)):
        suffix = ".".join(labels[k:]).lower()
        if suffix in table:
            return out + struct.pack(">H", 0xC000 | table[suffix])
        if offset + len(out) < 0x3FFF:
            table[suffix] = offset + len(out)
        b = labels[k].encode()
        out += bytes([len(b)]) + b
    return out + b"\x00"


def _rdata(kind, value, table, offset):
    if kind == "A":
        return socket.inet_aton(value)
    if kind == "AAAA":
        return socket.inet_pton(socket.AF_INET6, value)
    if kind == "SRV":
        prio, weight, port, target = value
        return struct.pack(">HHH", prio, weight, port) + _name(target, table, offset + 6)
    if kind == "CNAME":
        return _name(value, table, offset)
    raise ValueError(kind)


class SimDns:
    def __init__(self, net, host, port=53):
        self.net = net
        self.host = host
        self.port = port
        self.zone = {}
        self.mode = "answer"
        self.asked = []
        self.sock = None
        self.task = None

    def start(self, sched):
        if self.net.host_of(self.host) is None:
            self.net.add_host("dns-" + self.host, self.host)
        s = self.net.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((self.host, self.port))
        s.setblocking(False)
        self.sock = s
        self.task = sched.spawn(self._run, "simdns", RESTART)

    def close(self):
        if self.task is not None:
            self.task.cancel()
        if self.sock is not None:
            self.sock.close()

    async def _run(self):
        while True:
            await self.sock.wait_readable()
            while True:
                try:
                    data, addr = self.sock.recvfrom(4096)
                except OSError:
                    break
                out = self.answer(data)
                if out is not None:
                    self.sock.sendto(out, addr)

    def answer(self, q):
        qid, flags, qd = struct.unpack(">HHH", q[:6])
        i = 12
        labels = []
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode())
            i += 1 + q[i]
        qname = ".".join(labels).lower()
        qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
        question = q[12:i + 5]
        self.asked.append((qname, qtype))
        if self.mode == "drop":
            return None
        rcode = 2 if self.mode == "servfail" else 0
        table = {qname: 12}
        answers = []
        additional = []
        off = 12 + len(question)
        if rcode == 0:
            if qname not in self.zone:
                rcode = 3
            for kind, ttl, value in self.zone.get(qname, ()):
                if TYPES[kind] == qtype:
                    answers.append((qname, kind, ttl, value))
                    if kind == "SRV":      # glue for the target, as servers do
                        for k2, t2, v2 in self.zone.get(value[3], ()):
                            if k2 in ("A", "AAAA"):
                                additional.append((value[3], k2, t2, v2))
        body = b""
        for name, kind, ttl, value in answers + additional:
            rec = _name(name, table, off + len(body))
            head_at = off + len(body) + len(rec) + 10
            rd = _rdata(kind, value, table, head_at)
            rec += struct.pack(">HHIH", TYPES[kind], 1, ttl, len(rd)) + rd
            body += rec
        hdr = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, len(answers), 0, len(additional))
        return hdr + question + body
