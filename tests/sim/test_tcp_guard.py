# portable: micropython
# mpy-heapsize: 4M
"""TCP starvation (issue 12 item 5) on the whole appliance, on the virtual
clock and the simulated network (tests/sim/simnet.py): idle connections from
outside the allow list are refused at accept, idle connections from sources
the allow list lets in (or with no allow list) are evicted for a phone and
closed by the message timeout, and a phone connects and registers over TCP
all the same; the per-source cap from `security tcp
max-connections-per-source`; the counters in `show sip statistics`."""
import socket

from tests.portable import tmpdir, rmtree
from tests.sim.appliance import SimWorld, simulated
from tests.sim.cs_world import B, DOMAIN, password

PHONE_HOST = "127.0.1.50"


class World(SimWorld):
    """The appliance with station 2001 (and `extra` set lines) on the
    simulated network; portable (no tmp_path, no os.path)."""

    def __init__(self, seed, extra=()):
        self.seed = seed
        self.dir = tmpdir("tcp-guard")
        conf = self.dir + "/boot.conf"
        lines = [B + "sip domain " + DOMAIN, B + "station s2001 extension 2001",
                 B + "station s2001 password " + password("2001")] + list(extra)
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.app = simulated(self.dir + "/state", seed, args=("--config", conf))
        self.network = self.app.network
        self.server = ("127.0.0.1", self.app.sip_port)
        self.cs = self.app.callserver

    def cli(self, line):
        return self.app.commands.execute(self.app, line)

    def close(self):
        self.app.close()
        rmtree(self.dir)


def _attack(w, hosts, per_host, batch=4):
    """Open per_host idle connections from each host (a few at a time: the
    listener's backlog is 8); returns the client sockets."""
    socks = []
    for host in hosts:
        for _ in range(per_host):
            s = w.network.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            s.setblocking(False)
            s.connect(w.server)
            socks.append(s)
            if len(socks) % batch == 0:
                w.run(50)
    w.run(50)
    return socks


def _closed(s):
    try:
        return s.recv(100) == b""
    except OSError:
        return True


def _register_over_tcp(w, ext, host=PHONE_HOST):
    """A phone at host registers ext over a new TCP connection (digest);
    returns (final status or None when the connection was refused, socket)."""
    from sip.digest import DigestClient
    from sip.message import StreamFramer, parse
    from firmware.compat import Random
    s = w.network.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    s.setblocking(False)
    s.connect(w.server)
    lhost, lport = s.getsockname()
    framer = StreamFramer()
    auth = None
    for cseq in (1, 2):
        lines = ["REGISTER sip:%s SIP/2.0" % DOMAIN,
                 "Via: SIP/2.0/TCP %s:%d;branch=z9hG4bKguard%d;rport" % (lhost, lport, cseq),
                 "Max-Forwards: 70", "From: <sip:%s@%s>;tag=g1" % (ext, DOMAIN),
                 "To: <sip:%s@%s>" % (ext, DOMAIN), "Call-ID: guard@x",
                 "CSeq: %d REGISTER" % cseq,
                 "Contact: <sip:%s@%s:%d;transport=tcp>" % (ext, lhost, lport)]
        if auth:
            lines.append("Authorization: " + auth)
        try:
            s.sendall("\r\n".join(lines + ["Content-Length: 0", "", ""]).encode())
        except OSError:
            return None, s
        w.run(300)
        got = []
        for _ in range(16):
            try:
                data = s.recv(65535)
            except OSError:
                break
            if not data:
                break
            got.extend(framer.feed(data))
        if not got:
            return None, s
        last = parse(got[-1]) if isinstance(got[-1], bytes) else got[-1]
        if last.status != 401:
            return last.status, s
        auth = DigestClient().authorize("REGISTER", "sip:" + DOMAIN,
                                        last.get_all("www-authenticate"), ext,
                                        password(ext), Random(3))
    return None, s


def _stat(out, name):
    for line in out.split("\n"):
        if line.strip().startswith(name + "  "):
            return int(line.split()[-1])
    raise AssertionError("%r not in %s" % (name, out))


def test_connections_from_outside_the_allow_list_are_refused_and_a_phone_registers():
    w = World(61, extra=(B + "security allow-list 127.0.0.0/8",))
    try:
        tp = w.app.sip_transports
        attackers = _attack(w, ["10.66.0.1"], 20)
        assert tp.conns == [] and tp.counters["tcp_accepted"] == 0
        assert tp.counters["tcp_refused_source"] == 20
        assert all(_closed(s) for s in attackers)
        status, phone = _register_over_tcp(w, "2001")
        assert status == 200
        b = w.cs.registrar.contacts("s2001")[0]
        assert b.transport == "TCP" and b.dest[0] == PHONE_HOST
        sec = w.app.security
        assert sec.counters["tcp_not_allowed"] == 20
        log = [r for r in sec.access_log() if r[1].startswith("10.66.0.1:")]
        assert [r[3] for r in log] == ["TCP connection refused: not in allow list"]
        out = w.cli("show sip statistics")
        assert _stat(out, "tcp refused source") == 20
        assert "TCP connections refused: not in allow list" in out
        for s in attackers + [phone]:
            s.close()
    finally:
        w.close()


def test_idle_connections_are_evicted_and_timed_out_and_a_phone_keeps_its_flow():
    w = World(62)                                  # no allow list
    try:
        tp = w.app.sip_transports
        hosts = ["10.66.0.%d" % i for i in range(1, 6)]
        attackers = _attack(w, hosts, 4)           # 20 idle connections, 4 per source
        assert len(tp.conns) == 16 and tp.counters["tcp_evicted"] == 4
        extra = _attack(w, hosts[-1:], 1)          # a fifth from one source: over its cap
        assert tp.counters["tcp_refused_per_source"] == 1 and _closed(extra[0])
        start = w.now()
        status, phone = _register_over_tcp(w, "2001")
        assert status == 200                       # a slot was freed for it (the oldest idle)
        assert tp.counters["tcp_evicted"] == 5 and tp.counters["tcp_refused"] == 0
        # every idle connection is gone within the message timeout of its accept
        from firmware.sipstack.transport import TCP_MESSAGE_TIMEOUT_MS
        w.run(TCP_MESSAGE_TIMEOUT_MS - (w.now() - start) + 200)
        assert [c.addr[0] for c in tp.conns] == [PHONE_HOST]
        assert tp.counters["tcp_message_timeout"] == 15
        assert all(_closed(s) for s in attackers)
        w.run(60000)                               # the phone's quiet flow stays
        assert [c.addr[0] for c in tp.conns] == [PHONE_HOST]
        out = w.cli("show sip statistics")
        assert _stat(out, "tcp evicted") == 5 and _stat(out, "tcp message timeout") == 15
        assert _stat(out, "tcp refused per source") == 1
        for s in attackers + extra + [phone]:
            s.close()
    finally:
        w.close()


def test_the_per_source_cap_follows_the_configuration():
    w = World(63, extra=(B + "security tcp max-connections-per-source 2",))
    try:
        tp = w.app.sip_transports
        assert tp.max_per_source == 2
        socks = _attack(w, ["10.66.0.7"], 3)
        assert len(tp.conns) == 2 and tp.counters["tcp_refused_per_source"] == 1
        assert _closed(socks[2])
        w.app.config.load_file("cap.conf", B + "security tcp max-connections-per-source 3\n")
        assert tp.max_per_source == 3
        socks += _attack(w, ["10.66.0.7"], 2)
        assert len(tp.conns) == 3 and tp.counters["tcp_refused_per_source"] == 2
        for s in socks:
            s.close()
    finally:
        w.close()
