# portable: micropython
"""Remote syslog (RFC 5424): the message layout before and after the time is
synchronised, priorities, the length cut, and the bounded queue that drops
and counts when full.  In-process, virtual clock, no socket is opened."""
from firmware import syslog as R
from firmware.log import Log
from firmware.sched import Scheduler, VirtualClock
from firmware.timeofday import TimeOfDay, days_from_civil

T = days_from_civil(2030, 1, 2) * 86400000 + (3 * 3600 + 4 * 60 + 5) * 1000 + 7


def test_rfc_5424_layout_with_and_without_a_synchronised_clock():
    m = R.format_5424("local3", "warning", "SIP port moved", "br1", T)
    # local3 = 19: 19 * 8 + 4 = 156
    assert m == (b'<156>1 2030-01-02T03:04:05.007Z br1 branch-voice - - '
                 b'[timeQuality tzKnown="1" isSynced="1"] SIP port moved')
    m = R.format_5424("kern", "error", "x", "br1", None)
    assert m == b'<3>1 - br1 branch-voice - - [timeQuality tzKnown="0" isSynced="0"] x'
    assert R.format_5424("local7", "debug", "x", None)[:7] == b"<191>1 "


def test_a_long_message_is_cut_at_a_character_boundary():
    m = R.format_5424("user", "info", "\u00e9" * 2000, "h", None)
    assert len(m) <= R.MAX_MESSAGE
    m.decode()          # still valid UTF-8


class _App:
    def __init__(self):
        self.clock = VirtualClock()
        self.log = Log(self.clock)
        self.sched = Scheduler(self.clock, log=self.log.write)
        self.time = TimeOfDay(self.clock)
        self.hostname = "br1"


def test_the_sink_filters_by_level_and_the_queue_is_bounded_with_a_drop_counter():
    app = _App()
    rs = R.RemoteSyslog(app)
    rs.hosts = [("192.0.2.5", 514, "local0", "warning")]      # no task: the queue only fills
    app.log.sinks.append(rs.sink)
    app.log.info("not sent: below warning")
    assert rs.queue == []
    for i in range(R.MAX_QUEUE + 5):
        app.log.write("warning", "w%d" % i)
    assert len(rs.queue) == R.MAX_QUEUE and rs.dropped == 5
    dest, data = rs.queue[0]
    assert dest == ("192.0.2.5", 514) and data.startswith(b"<132>1 - br1 ") and data.endswith(b" w0")
    assert "dropped 5 (queue of 64 full)" in rs.show()


def test_entries_are_stamped_with_the_time_of_day_once_synchronised():
    app = _App()
    rs = R.RemoteSyslog(app)
    rs.hosts = [("192.0.2.5", 514, "daemon", "info")]
    app.log.sinks.append(rs.sink)
    app.time.set(T, 0)
    app.clock.advance_to(1000)
    app.log.info("after")
    assert rs.queue[-1][1].startswith(b"<30>1 2030-01-02T03:04:06.007Z br1 ")
