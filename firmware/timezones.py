"""Time zones without a tz database (`system time-zone`): UTC, fixed offsets
`UTC+2`, `UTC-05:30`, and the named zones in ZONES with the daylight-saving
rule in force today (EU: last Sunday of March to last Sunday of October at
01:00 UTC; US: second Sunday of March to first Sunday of November at 02:00
local).  Past or future rule changes are not known; fixed offsets never
change.  Loaded only for a zone other than UTC.
"""
from firmware.timeofday import days_from_civil, civil_from_days, weekday

# name: (standard offset in minutes, DST rule or None, standard abbreviation, DST abbreviation)
ZONES = {
    "UTC": (0, None, "UTC", "UTC"),
    "GMT": (0, None, "GMT", "GMT"),
    "Europe/London": (0, "EU", "GMT", "BST"),
    "Europe/Dublin": (0, "EU", "GMT", "IST"),
    "Europe/Lisbon": (0, "EU", "WET", "WEST"),
    "Europe/Berlin": (60, "EU", "CET", "CEST"),
    "Europe/Paris": (60, "EU", "CET", "CEST"),
    "Europe/Amsterdam": (60, "EU", "CET", "CEST"),
    "Europe/Brussels": (60, "EU", "CET", "CEST"),
    "Europe/Madrid": (60, "EU", "CET", "CEST"),
    "Europe/Rome": (60, "EU", "CET", "CEST"),
    "Europe/Vienna": (60, "EU", "CET", "CEST"),
    "Europe/Zurich": (60, "EU", "CET", "CEST"),
    "Europe/Stockholm": (60, "EU", "CET", "CEST"),
    "Europe/Warsaw": (60, "EU", "CET", "CEST"),
    "Europe/Helsinki": (120, "EU", "EET", "EEST"),
    "Europe/Athens": (120, "EU", "EET", "EEST"),
    "America/New_York": (-300, "US", "EST", "EDT"),
    "America/Chicago": (-360, "US", "CST", "CDT"),
    "America/Denver": (-420, "US", "MST", "MDT"),
    "America/Phoenix": (-420, None, "MST", "MST"),
    "America/Los_Angeles": (-480, "US", "PST", "PDT"),
    "Asia/Tokyo": (540, None, "JST", "JST"),
    "Asia/Kolkata": (330, None, "IST", "IST"),
    "Asia/Singapore": (480, None, "SGT", "SGT"),
}


def _nth_sunday(y, m, n):
    """Day number of the n-th Sunday of month m (n = -1: the last)."""
    if n > 0:
        first = days_from_civil(y, m, 1)
        return first + (7 - weekday(first)) % 7 + 7 * (n - 1)
    nm, ny = (m + 1, y) if m < 12 else (1, y + 1)
    last = days_from_civil(ny, nm, 1) - 1
    return last - weekday(last)


def dst_active(rule, std_min, unix_ms):
    y = civil_from_days(unix_ms // 86400000)[0]
    if rule == "EU":
        start = _nth_sunday(y, 3, -1) * 86400000 + 3600000
        end = _nth_sunday(y, 10, -1) * 86400000 + 3600000
    else:   # US: 02:00 local standard time, back at 02:00 local daylight time
        start = _nth_sunday(y, 3, 2) * 86400000 + (120 - std_min) * 60000
        end = _nth_sunday(y, 11, 1) * 86400000 + (120 - std_min - 60) * 60000
    return start <= unix_ms < end


def parse_zone(text):
    """(offset minutes, rule, std abbreviation, dst abbreviation, canonical name);
    ValueError with the reason for anything else."""
    z = ZONES.get(text)
    if z is not None:
        return z + (text,)
    t = text
    for pre in ("UTC", "GMT"):
        if t.startswith(pre) and len(t) > 3 and t[3] in "+-":
            sign = -1 if t[3] == "-" else 1
            rest = t[4:]
            hh, sep, mm = rest.partition(":")
            if not sep and len(rest) == 4:
                hh, mm = rest[:2], rest[2:]
            if not hh.isdigit() or (mm and not mm.isdigit()) or (sep and len(mm) != 2):
                break
            h, m = int(hh), int(mm or "0")
            if h > 14 or m > 59 or h * 60 + m > 14 * 60:
                raise ValueError("offset out of range UTC-14:00..UTC+14:00")
            off = sign * (h * 60 + m)
            label = "UTC%s%02d:%02d" % ("-" if off < 0 else "+", abs(off) // 60, abs(off) % 60)
            return (off, None, label, label, text)
    raise ValueError("expected UTC, UTC+H, UTC-HH:MM or one of: %s" % ", ".join(sorted(ZONES)))
