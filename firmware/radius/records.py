"""From a CDR (firmware/cdr: `rec.as_dict()`) to the attributes of an
accounting record.  Only what the CDR says is sent: a field it lacks is left
out, never made up."""
from firmware.radius import packet as P

# Acct-Terminate-Cause (RFC 2866 5.10)
USER_REQUEST = 1
LOST_CARRIER = 2
IDLE_TIMEOUT = 4
SESSION_TIMEOUT = 5
ADMIN_RESET = 6
ADMIN_REBOOT = 7
NAS_ERROR = 9
NAS_REQUEST = 10
NAS_REBOOT = 11
SERVICE_UNAVAILABLE = 15
USER_ERROR = 17
HOST_REQUEST = 18

# CDR disposition -> cause when the release cause says nothing more precise
_BY_DISPOSITION = {
    "answered": USER_REQUEST, "cancelled": USER_REQUEST, "busy": HOST_REQUEST,
    "rejected": HOST_REQUEST, "no answer": IDLE_TIMEOUT, "no-answer": IDLE_TIMEOUT,
    "failed": SERVICE_UNAVAILABLE,
}


def terminate_cause(d):
    """The Acct-Terminate-Cause of an ended call (a CDR dict)."""
    cause = str(d.get("cause") or "").lower()
    if "timeout" in cause or "timer" in cause or "expired" in cause:
        return SESSION_TIMEOUT
    if "shutdown" in cause or "reboot" in cause:
        return ADMIN_REBOOT     # the appliance stops on request (app.close ends live calls)
    if "table full" in cause:
        return NAS_ERROR
    if "admin" in cause or "console" in cause:
        return ADMIN_RESET
    if "lost" in cause or "unreachable" in cause:
        return LOST_CARRIER
    return _BY_DISPOSITION.get(str(d.get("disposition") or "").lower(), NAS_REQUEST)


def session_time(d, now_ms=None):
    """Seconds of service: the billable seconds, from answer to end (to
    now_ms, on the CDR's own clock, while the call lasts)."""
    if d.get("end") is not None:
        return int(d.get("billsec") or 0)
    a = d.get("answer")
    if a is None or now_ms is None:
        return 0
    return max(0, (now_ms - a) // 1000)


# CDR fields sent as Cisco-AVPair "name=value" in a Stop (the call-id also in
# Start and Interim-Update, so that a server can tie them to the SIP legs)
_STOP_PAIRS = ("disposition", "sip_status", "cause", "released_by", "original_called",
               "redirect", "src_kind", "src", "dst_kind", "dst", "codec",
               "rtp_sent", "rtp_received", "rtp_lost", "duration")


def _pair(k, v):
    return (P.VENDOR_SPECIFIC, (P.VENDOR_CISCO, 1, "%s=%s" % (k.replace("_", "-"), v)))


def attributes(d, status, nas, event_s=None, cause=None, now_ms=None):
    """[(type, value)] of a Start, Interim-Update or Stop for the CDR dict d;
    nas: (nas_identifier, nas_ip or None); event_s: the Event-Timestamp
    (None while the time of day is unknown: left out); now_ms: now on the
    CDR's clock, for the session time of an Interim-Update."""
    a = [(P.ACCT_STATUS_TYPE, status), (P.ACCT_SESSION_ID, str(d["id"]))]
    nas_id, nas_ip = nas
    if nas_ip:
        a.append((P.NAS_IP_ADDRESS, nas_ip))
    if nas_id:
        a.append((P.NAS_IDENTIFIER, nas_id))
    calling = d.get("calling")
    called = d.get("called")
    user = d.get("src") or calling
    if user:
        a.append((P.USER_NAME, str(user)))
    if calling:
        a.append((P.CALLING_STATION_ID, str(calling)))
    if called:
        a.append((P.CALLED_STATION_ID, str(called)))
    a.append((P.NAS_PORT_TYPE, 5))      # Virtual: a SIP or analog call, not a dial-up port
    if event_s is not None:
        a.append((P.EVENT_TIMESTAMP, int(event_s)))
    if status != P.START:
        a.append((P.ACCT_SESSION_TIME, session_time(d, now_ms)))
    if status == P.STOP:
        a.append((P.ACCT_TERMINATE_CAUSE, cause if cause is not None else terminate_cause(d)))
    ids = d.get("call_ids") or ()
    if ids:
        a.append(_pair("call_id", ",".join(ids)))
    if d.get("mode"):
        a.append(_pair("mode", d["mode"]))
    if status == P.STOP:
        for k in _STOP_PAIRS:
            v = d.get(k)
            if v is not None and v != "":
                a.append(_pair(k, v))
    return a
