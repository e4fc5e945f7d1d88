# portable: micropython
# mpy-heapsize: 4M
"""RADIUS accounting in a whole simulated appliance on both interpreters
(the proof that firmware/radius runs on MicroPython): a call's Start and
Stop reach a server on the simulated network; with the server silent the
records wait on flash, survive a reboot, and are replayed in order once it
answers.  The server here checks the Request Authenticator from the RFC's
words; tests/sim/test_radius_accounting.py has the pyrad-decoded variant."""
from firmware.compat import md5
from firmware.radius import packet as P
from tests.portable import tmpdir, rmtree
from tests.sim.appliance import simulated, network
from tests.unit.test_radius_client import _answer

SECRET = b"portable-secret"


class Server:
    def __init__(self, net, sched):
        self.up = True
        self.got = []
        self.sock = net.socket(2, 2)
        self.sock.bind(("192.0.2.10", 1813))
        self.sock.setblocking(False)
        sched.spawn(self._run(), "radius-server")

    async def _run(self):
        while True:
            await self.sock.wait_readable()
            while True:
                try:
                    data, src = self.sock.recvfrom(4096)
                except OSError:
                    break
                assert md5(data[:4] + bytes(16) + data[20:] + SECRET).digest() == data[4:20]
                a = dict(P.decode_attributes(data[20:]))
                if self.up:
                    self.got.append((a[P.ACCT_STATUS_TYPE][3], a[P.ACCT_SESSION_ID].decode()))
                    self.sock.sendto(_answer(data, SECRET), src)


def _boot(state, seed):
    net = network(seed)
    app = simulated(state, seed=seed, net=net)
    return app, Server(net, app.sched)


def _run(app, ms):
    app.sched.run(until=app.clock.now() + ms)


def test_records_reach_the_server_and_a_backlog_survives_a_reboot():
    state = tmpdir("radius-sim")
    try:
        app, srv = _boot(state, 5)
        app.config.load_file("r.conf", "\n".join((
            "set system accounting radius server 192.0.2.10 secret portable-secret",
            "set system accounting radius timeout 1", "set system accounting radius retries 1")))
        rec = app.calls.setup("callserver", "1001", "1002", ("station", "a"), ("station", "b"))
        _run(app, 1000)
        app.calls.answered(rec)
        _run(app, 3000)
        app.calls.ended(rec, 0, "caller bye", "caller")
        _run(app, 1000)
        assert srv.got == [(1, rec.id), (2, rec.id)]
        srv.up = False
        ids = []
        for i in range(3):
            r = app.calls.rejected("callserver", "1001", "1%03d" % i, 404, "Not Found")
            ids += [(1, r.id), (2, r.id)]
        _run(app, 10000)
        assert len(app.radius.journal.pending) == 6
        app.close()

        app, srv = _boot(state, 6)           # the same flash
        assert app.radius.loaded == 6
        _run(app, 5000)
        assert srv.got == ids and not app.radius.journal.pending
        app.close()
    finally:
        rmtree(state)
