# portable: micropython
"""The SNTP client (RFC 4330) sans-I/O, and the time of day built on it:
request layout, answer checks, offset and delay, retries and back-off,
kiss-o'-death, the calendar, time zones with and without DST, and the
TimeOfDay stamps before and after a sync.  Virtual time only."""
from firmware import sntp as N
from firmware.compat import Random
from firmware.sched import VirtualClock
from firmware.timeofday import TimeOfDay, days_from_civil, civil_from_days, weekday
from firmware.timezones import parse_zone
from tests.portable import raises

SERVER = ("192.0.2.1", 123)
# 2030-01-02 03:04:05.250 UTC
T = days_from_civil(2030, 1, 2) * 86400000 + (3 * 3600 + 4 * 60 + 5) * 1000 + 250


def answer(request, t2, t3, stratum=2, li=0, vn=4, mode=4, ref=b"GPS\x00"):
    pkt = bytearray(48)
    pkt[0] = (li << 6) | (vn << 3) | mode
    pkt[1] = stratum
    pkt[12:16] = ref
    pkt[24:32] = request[40:48]        # originate = the client's transmit timestamp
    pkt[32:40] = N.unix_ms_to_ntp(t2)
    pkt[40:48] = N.unix_ms_to_ntp(t3)
    return bytes(pkt)


def test_request_is_48_bytes_version_4_client_mode_with_a_random_transmit_stamp():
    c = N.SntpClient([SERVER], Random(1))
    acts = c.poll(0)
    assert [a[0] for a in acts] == ["send"] and acts[0][1] == SERVER
    pkt = acts[0][2]
    assert len(pkt) == 48 and pkt[0] == 0x23 and pkt[1:40] == bytes(39)
    assert pkt[40:48] != bytes(8)
    assert c.poll(1) == []              # one request outstanding
    c2 = N.SntpClient([SERVER], Random(2))
    assert c2.poll(0)[0][2][40:48] != pkt[40:48]


def test_ntp_timestamps_convert_both_ways_and_across_the_2036_era():
    assert N.ntp_to_unix_ms(N.unix_ms_to_ntp(T)) == T
    assert N.ntp_to_unix_ms(bytes([0x83, 0xAA, 0x7E, 0x80, 0, 0, 0, 0])) == 0   # 1970-01-01
    after = days_from_civil(2040, 6, 1) * 86400000
    stamp = N.unix_ms_to_ntp(after)
    assert stamp[0] & 0x80 == 0          # era 1: top bit clear
    assert N.ntp_to_unix_ms(stamp) == after


def test_a_sync_computes_the_time_at_receipt_from_t3_plus_half_the_delay():
    c = N.SntpClient([SERVER], Random(3))
    req = c.poll(1000)[0][2]
    # sent at 1000, received at 1100 (100 ms round trip); the server held it 20 ms
    r = c.receive(answer(req, T, T + 20), SERVER, 1100)
    assert r == ("sync", T + 20 + 40, SERVER, 80)
    assert c.next_deadline() == 1100 + N.POLL_MS
    assert c.poll(1100 + N.POLL_MS - 1) == []
    assert c.poll(1100 + N.POLL_MS)[0][0] == "send"


def test_answers_that_fail_the_rfc_4330_checks_are_refused_with_a_reason():
    cases = (
        (dict(li=3), "server not synchronised"),
        (dict(mode=3), "mode 3"),
        (dict(vn=2), "version 2"),
        (dict(stratum=16), "stratum 16"),
    )
    for kw, why in cases:
        c = N.SntpClient([SERVER, ("192.0.2.2", 123)], Random(4))
        req = c.poll(0)[0][2]
        r = c.receive(answer(req, T, T, **kw), SERVER, 10)
        assert r[0] == "reject" and why in r[2], (kw, r)
        assert c.rejected == 1
        assert c.poll(10)[0][1] == ("192.0.2.2", 123)     # the next server at once
    c = N.SntpClient([SERVER], Random(4))
    req = c.poll(0)[0][2]
    assert c.receive(answer(req, T, T)[:47], SERVER, 5)[2] == "short packet (47 bytes)"


def test_a_stranger_or_a_stale_answer_is_dropped_and_the_request_stays_open():
    c = N.SntpClient([SERVER], Random(5))
    req = c.poll(0)[0][2]
    good = answer(req, T, T)
    assert c.receive(good, ("192.0.2.9", 123), 10) is None         # wrong source
    assert c.receive(good, ("192.0.2.1", 124), 10) is None         # wrong port
    forged = bytearray(good)
    forged[24] ^= 1
    assert c.receive(bytes(forged), SERVER, 10) is None            # not our nonce
    assert c.dropped == 3
    assert c.receive(good, SERVER, 20)[0] == "sync"
    assert c.receive(good, SERVER, 30) is None                     # a duplicate
    assert c.dropped == 4


def test_retries_are_bounded_per_server_then_the_round_fails_and_backs_off():
    servers = [SERVER, ("192.0.2.2", 1123)]
    c = N.SntpClient(servers, Random(6), timeout_ms=2000, tries=2)
    seen = []
    now = 0
    for _ in range(4):
        acts = c.poll(now)
        seen.append([(a[0], a[1]) for a in acts])
        now = c.next_deadline()
    assert seen[0] == [("send", SERVER)]
    assert seen[1] == [("timeout", SERVER), ("send", SERVER)]
    assert seen[2] == [("timeout", SERVER), ("send", servers[1])]
    assert seen[3] == [("timeout", servers[1]), ("send", servers[1])]
    acts = c.poll(now)
    assert [a[0] for a in acts] == ["timeout", "failed"]
    assert c.next_deadline() == now + N.RETRY_MIN_MS
    # each failed round doubles the wait, up to POLL_MS
    waits = []
    for _ in range(12):
        now = c.next_deadline()
        while True:
            acts = c.poll(now)
            if acts and acts[-1][0] == "failed":
                break
            now = c.next_deadline()
        waits.append(c.next_deadline() - now)
    assert waits[0] == 2 * N.RETRY_MIN_MS and waits[-1] == N.POLL_MS
    assert c.sent == 13 * 4


def test_kiss_of_death_deny_stops_that_server_rate_moves_on():
    servers = [SERVER, ("192.0.2.2", 123)]
    c = N.SntpClient(servers, Random(7))
    req = c.poll(0)[0][2]
    assert c.receive(answer(req, T, T, stratum=0, ref=b"DENY"), SERVER, 5) == ("kod", SERVER, "DENY")
    req = c.poll(5)[0]
    assert req[1] == servers[1]
    r = c.receive(answer(req[2], T, T, stratum=0, ref=b"RATE"), servers[1], 9)
    assert r == ("kod", servers[1], "RATE")
    for _ in range(5):      # SERVER is never asked again
        acts = c.poll(c.next_deadline())
        assert all(a[1] != SERVER for a in acts if a[0] == "send")
    c2 = N.SntpClient([SERVER], Random(7))
    req = c2.poll(0)[0][2]
    c2.receive(answer(req, T, T, stratum=0, ref=b"RSTR"), SERVER, 5)
    assert c2.poll(10) == [] and c2.next_deadline() == 10 + N.POLL_MS


def test_calendar_round_trips_and_knows_weekdays_and_leap_years():
    assert days_from_civil(1970, 1, 1) == 0
    assert civil_from_days(days_from_civil(2000, 2, 29)) == (2000, 2, 29)
    assert civil_from_days(days_from_civil(2100, 3, 1) - 1) == (2100, 2, 28)
    assert weekday(days_from_civil(2026, 12, 2)) == 3      # a Wednesday
    for z in (-800, 0, 11016, 20000, 24000, 50000):
        assert days_from_civil(*civil_from_days(z)) == z


def test_time_zones_fixed_offsets_and_named_zones_with_their_dst_rule():
    clock = VirtualClock(0)
    t = TimeOfDay(clock)
    assert t.local(T) == "2030-01-02 03:04:05 UTC"
    t.set_zone("UTC+2")
    assert t.local(T) == "2030-01-02 05:04:05 UTC+02:00"
    t.set_zone("UTC-05:30")
    assert t.local(T, millis=True) == "2030-01-01 21:34:05.250 UTC-05:30"
    t.set_zone("Europe/Berlin")
    assert t.local(T) == "2030-01-02 04:04:05 CET"
    summer = days_from_civil(2030, 7, 1) * 86400000
    assert t.local(summer) == "2030-07-01 02:00:00 CEST"
    # EU: 2026-03-29 01:00 UTC, the last Sunday of March
    start = days_from_civil(2026, 3, 29) * 86400000 + 3600000
    assert t.local(start - 1000) == "2026-03-29 01:59:59 CET"
    assert t.local(start) == "2026-03-29 03:00:00 CEST"
    t.set_zone("America/New_York")
    # US: 2026-03-08 02:00 EST = 07:00 UTC; back on 2026-11-01 02:00 EDT = 06:00 UTC
    start = days_from_civil(2026, 3, 8) * 86400000 + 7 * 3600000
    assert t.local(start - 1000) == "2026-03-08 01:59:59 EST"
    assert t.local(start) == "2026-03-08 03:00:00 EDT"
    end = days_from_civil(2026, 11, 1) * 86400000 + 6 * 3600000
    assert t.local(end - 1000) == "2026-11-01 01:59:59 EDT"
    assert t.local(end) == "2026-11-01 01:00:00 EST"
    for bad, why in (("UTC+15", "out of range"), ("Mars/Olympus", "expected UTC"),
                     ("UTC+1:5", "expected UTC"), ("CET", "expected UTC")):
        assert why in str(raises(ValueError, parse_zone, bad)), bad


def test_time_of_day_is_unknown_until_a_sync_then_stamps_are_dates_even_for_earlier_instants():
    clock = VirtualClock(5000)
    logs = []
    t = TimeOfDay(clock, lambda lvl, text: logs.append((lvl, text)))
    assert t.now() is None and not t.synced
    assert t.stamp(1234) == "uptime 1.234s"
    t.set(T, 5000, SERVER, 12)
    assert t.synced and t.now() == T and t.last_sync == 5000
    clock.advance_to(6500)
    assert t.now() == T + 1500
    assert t.stamp(1234) == "2030-01-02 03:04:01.484"
    assert logs == [("notice", "time synchronised from 192.0.2.1:123: 2030-01-02 03:04:05 UTC")]
    t.set(T + 1500 + 3000, 6500, SERVER, 12)
    assert logs[-1] == ("notice", "time stepped by +3000 ms (from 192.0.2.1:123)")
    t.set(T + 1500 + 3200, 6500, SERVER, 12)
    assert len(logs) == 2                   # small corrections are not logged
