"""DTMF relay across the gateway (issue 14, feature 11).

    key, ms = parse_info(content_type, body)   # SIP INFO -> key; DtmfError(status) if bad
    info_body(key, ms) -> bytes                # application/dtmf-relay for an outgoing INFO
    p = InbandPlayer(law); p.push(keys)        # regenerate keys as tones in PCM (FXS ports)
    p.fill(buf) -> bool                        # next 20 ms of tone/gap, False when idle
    LocalInfo(key, ms)                         # an INFO from an analog port to the call
                                               # server over an in-process session

From a SIP phone: RFC 4733 events (firmware/media/rtp.py collects each key
press once: take_digits()) and SIP INFO (application/dtmf-relay "Signal=5
Duration=160", or application/dtmf with the bare key) are regenerated on
the analog line: an FXS port plays the two tones into the phone's earpiece
(InbandPlayer, DIGIT_ON_MS tone + DIGIT_OFF_MS gap per key, replacing the
far end's audio meanwhile); an FXO port hands the keys to the DAA's dialler
(hal/drivers/si3050.py dial()).

From an analog phone: a key pressed during a call leaves as the station's
`dtmf-mode` says: rfc4733 (default; RtpSession.send_digits, falls back to
in-band when the far end offered no telephone-event), info (SIP INFO on the
call's dialog) or inband (only the tones in the voice path).

Bounds: MAX_KEYS keys wait in a player (or an RTP session's event queue);
beyond that a key is refused and counted (`dropped`), the earlier ones
play out.  INFO with another content type gets 415, with no valid key 400.
"""
from firmware.compat import const

MAX_KEYS = const(16)
DIGIT_ON_MS = const(100)
DIGIT_OFF_MS = const(60)
MAX_INFO_MS = const(5000)
KEYS = "0123456789*#ABCD"
INFO_TYPES = ("application/dtmf-relay", "application/dtmf")
MODES = ("rfc4733", "info", "inband")


class DtmfError(Exception):
    def __init__(self, status, text):
        super().__init__(text)
        self.status = status


def parse_info(content_type, body):
    """(key, duration ms) of a DTMF INFO (RFC 2976 with the de-facto bodies)."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype not in INFO_TYPES:
        raise DtmfError(415, "Unsupported Media Type")
    try:
        text = bytes(body or b"").decode()
    except UnicodeError:
        raise DtmfError(400, "Bad DTMF Body")
    key = None
    ms = DIGIT_ON_MS
    if ctype == "application/dtmf":
        key = text.strip()
    else:
        for line in text.replace("\r", "\n").split("\n"):
            name, _, value = line.partition("=")
            name = name.strip().lower()
            value = value.strip()
            if name == "signal":
                key = value
            elif name == "duration":
                try:
                    ms = int(value)
                except ValueError:
                    raise DtmfError(400, "Bad DTMF Duration")
    if key is None or len(key) != 1 or key.upper() not in KEYS:
        raise DtmfError(400, "Bad DTMF Signal")
    if not 0 < ms <= MAX_INFO_MS:
        raise DtmfError(400, "Bad DTMF Duration")
    return key.upper(), ms


def info_body(key, ms=DIGIT_ON_MS):
    return ("Signal=%s\r\nDuration=%d\r\n" % (key, ms)).encode()


class LocalInfo:
    """An INFO from an analog port over an in-process session: it has the
    request and respond() a ServerRequest has, so the call server relays it
    as it relays a SIP phone's."""
    method = "INFO"
    content_type = "application/dtmf-relay"

    def __init__(self, key, ms=DIGIT_ON_MS):
        self.body = info_body(key, ms)
        self.request = self
        self.status = None

    def respond(self, status, reason=None, headers=None, body=b"", content_type=None):
        self.status = status
        return self


class InbandPlayer:
    """Keys as DTMF tones in 20 ms frames of the port's law (buffers reused)."""

    def __init__(self, law):
        from hal import g711
        from hal.dsp import ToneGen
        self.enc = g711.encoder(law)
        self.sil = g711.silence(law)
        self.gen = ToneGen()
        self.keys = ""
        self.frame = 0          # frames played of the current key (on + off)
        self.played = 0
        self.dropped = 0

    def push(self, keys):
        for k in keys:
            if len(self.keys) >= MAX_KEYS:
                self.dropped += 1
            else:
                self.keys += k

    def active(self):
        return bool(self.keys)

    def fill(self, buf):
        if not self.keys:
            return False
        on = DIGIT_ON_MS // 20
        if self.frame == 0:
            from hal.dsp import dtmf_freqs
            self.gen.set(dtmf_freqs(self.keys[0]), 5000)
        if self.frame < on:
            self.gen.fill(buf, self.enc)
        else:
            s = self.sil
            for i in range(len(buf)):
                buf[i] = s
        self.frame += 1
        if self.frame >= on + DIGIT_OFF_MS // 20:
            self.frame = 0
            self.keys = self.keys[1:]
            self.played += 1
        return True


def _ignore(resp, now):
    pass


def send_info(session, key, now, ms=DIGIT_ON_MS):
    """An INFO with the key on a call's session: over SIP, or in process to
    the call server's side of a local session.  False when it cannot go."""
    if getattr(session, "usage", None) == "local":
        peer = session.peer
        fn = getattr(peer.owner, "on_request", None) if peer is not None else None
        if fn is None or session.state != "confirmed":
            return False
        return session.pair.post(fn, peer, LocalInfo(key, ms))
    d = getattr(session, "dialog", None)
    if d is None:
        return False
    session.ua.in_dialog(d, "INFO", _ignore, now, info_body(key, ms), INFO_TYPES[0])
    return True


def info_to_port(session, req):
    """The call server's INFO toward an analog port's in-process session:
    the status to answer (200, 415, 400); the key goes to the port's leg."""
    try:
        key, ms = parse_info(req.content_type, req.body)
    except DtmfError as e:
        return e.status
    peer = session.peer
    fn = getattr(peer.owner, "on_dtmf", None) if peer is not None else None
    if fn is not None:
        session.pair.post(fn, key, ms)
    return 200
