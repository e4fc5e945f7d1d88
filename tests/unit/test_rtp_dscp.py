"""RTP marking (issue 14, feature 12) on real loopback sockets: every RTP
socket carries the service class's dscp-rtp in its TOS byte, a committed
change re-marks sockets already carrying a call, and the mark is read back
from the kernel with getsockopt."""
import socket

from firmware.compat import Random
from firmware.config import voice
from firmware.media.rtp import MediaManager, set_rtp_dscp, DEFAULT_DSCP


class _App:
    def __init__(self):
        self.rng = Random(3)


class _Cfg:
    """The committed view the voice apply hook reads."""

    def __init__(self, values):
        self.values = values

    def get(self, path):
        return self.values.get(path)


def _tos(sess):
    return sess.sock.getsockopt(socket.IPPROTO_IP, socket.IP_TOS)


def test_new_rtp_sockets_carry_ef_by_default():
    mm = MediaManager(_App(), "127.0.0.1", 31700, 31720)
    s = mm.open()
    try:
        assert _tos(s) == DEFAULT_DSCP << 2 == 0xB8
        assert mm.dscp_errors == 0
    finally:
        mm.close(s)


def test_a_committed_dscp_rtp_remarks_open_sockets_of_every_manager():
    app = _App()
    gw = MediaManager(app, "127.0.0.1", 31730, 31750)
    att = MediaManager(app, "127.0.0.1", 31760, 31780, role="attendant")
    a, b = gw.open(), att.open()
    try:
        base = "services convergence-services "
        voice.apply(app, None, _Cfg({
            base + "sip port": 5060, base + "sip service-class": "voice",
            base + "service-class voice dscp-rtp": 34,     # af41
            base + "service-class voice dscp-sip": 24}))
        assert _tos(a) == 34 << 2 and _tos(b) == 34 << 2
        c = gw.open()                   # and sockets opened after the commit
        assert _tos(c) == 34 << 2
        gw.close(c)
        # the media still flows on a re-marked socket, and the packet leaves marked
        a.set_remote("127.0.0.1", b.port, 0)
        assert a.send(bytes(160))
        set_rtp_dscp(app, 0)
        assert _tos(a) == 0 and _tos(b) == 0
    finally:
        gw.close(a)
        att.close(b)


def test_a_rebuilt_service_replaces_its_manager_in_the_table():
    app = _App()
    MediaManager(app, "127.0.0.1", 31790, 31799)
    MediaManager(app, "127.0.0.1", 31790, 31799)
    assert len(app.media_managers) == 1


def test_an_out_of_range_dscp_is_refused_with_its_value():
    try:
        set_rtp_dscp(_App(), 64)
    except ValueError as e:
        assert "64" in str(e)
    else:
        raise AssertionError("DSCP 64 accepted")
