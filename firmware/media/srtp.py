"""SRTP and SRTCP (RFC 3711) with the SDES suites of RFC 4568:
AES_CM_128_HMAC_SHA1_80 and AES_CM_128_HMAC_SHA1_32.

    s = session(suite, key_salt, outbound=True)   # key_salt: 30 bytes (16 key + 14 salt)
    wire = s.protect(rtp_packet)                   # bytes in, bytes out
    rtp = r.unprotect(wire)                        # raises SrtpError (auth, replay, short)
    s.protect_rtcp(rtcp) / r.unprotect_rtcp(srtcp)

Two engines behind one interface:
  - CPython: libsrtp through the PyPI package pylibsrtp, the library of the
    field (when it is importable);
  - MicroPython (and CPython without pylibsrtp): our own AES counter mode on a
    128-bit block cipher (MicroPython's cryptolib.aes in ECB mode; any object
    with encrypt(in16, out16) can be injected) and HMAC-SHA1 on hashlib.
Both produce the same bytes; tests/unit/test_srtp.py checks ours against the
RFC 3711 appendix B vectors on both interpreters and against libsrtp.

Our engine keeps per-SSRC state (rollover counter, highest sequence number,
a REPLAY_WINDOW-packet replay window) for at most MAX_STREAMS SSRCs per
session: a packet from one more SSRC is refused (SrtpError "streams") rather
than evicting a stream in use.  The key derivation rate is 0 (keys derived
once), as SDES offers it; an MKI is not supported (refused in sip/sdes.py).
"""
import hashlib

from firmware.compat import const
from sip.sdes import KEY_SALT_LEN, SUITES

SRTCP_TAG = const(10)           # SRTCP is authenticated with 80 bits in both suites
MAX_STREAMS = const(4)          # SSRCs tracked per session (direction)
REPLAY_WINDOW = const(64)       # RFC 3711 §3.3.2: at least 64
_MASK31 = 0x7FFFFFFF


class SrtpError(Exception):
    pass


def session(suite, key_salt, outbound, engine=None, aes=None):
    """A protect/unprotect object for one direction of one media stream."""
    if suite not in SUITES:
        raise SrtpError("unsupported suite %s" % suite)
    if len(key_salt) != KEY_SALT_LEN:
        raise SrtpError("key and salt must be %d bytes" % KEY_SALT_LEN)
    if engine is None:
        engine = "libsrtp" if aes is None and _pylibsrtp() is not None else "own"
    if engine == "libsrtp":
        return LibSrtp(suite, key_salt, outbound)
    return OwnSrtp(suite, key_salt, aes)


def _pylibsrtp():
    try:
        import pylibsrtp
        return pylibsrtp
    except ImportError:
        return None


# -- libsrtp (CPython) ----------------------------------------------------------

class LibSrtp:
    engine = "libsrtp"

    def __init__(self, suite, key_salt, outbound):
        p = _pylibsrtp()
        pol = p.Policy(key=bytes(key_salt),
                       ssrc_type=p.Policy.SSRC_ANY_OUTBOUND if outbound
                       else p.Policy.SSRC_ANY_INBOUND,
                       srtp_profile=p.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
                       if SUITES[suite] == 10 else p.Policy.SRTP_PROFILE_AES128_CM_SHA1_32)
        pol.window_size = REPLAY_WINDOW
        self._s = p.Session(pol)
        self._err = p.Error

    def _do(self, fn, pkt):
        try:
            return fn(bytes(pkt))
        except self._err as e:
            raise SrtpError(str(e))

    def protect(self, pkt):
        return self._do(self._s.protect, pkt)

    def unprotect(self, pkt):
        return self._do(self._s.unprotect, pkt)

    def protect_rtcp(self, pkt):
        return self._do(self._s.protect_rtcp, pkt)

    def unprotect_rtcp(self, pkt):
        return self._do(self._s.unprotect_rtcp, pkt)


# -- our engine (MicroPython) ---------------------------------------------------

def _cryptolib_aes(key):
    import cryptolib
    return cryptolib.aes(bytes(key), 1)     # 1 = ECB: we build the counter blocks


def _xor_into(dst, off, ks, n):
    """dst[off:off+n] ^= ks[:n], with big integers (C speed on both
    interpreters) rather than a byte loop."""
    a = int.from_bytes(bytes(dst[off:off + n]), "big")
    b = int.from_bytes(bytes(ks[:n]), "big")
    dst[off:off + n] = (a ^ b).to_bytes(n, "big")


class _Hmac:
    """HMAC-SHA1 (RFC 2104) with the padded keys prepared once."""

    def __init__(self, key):
        k = bytes(key) + bytes(64 - len(key))
        self.ipad = bytes(x ^ 0x36 for x in k)
        self.opad = bytes(x ^ 0x5C for x in k)

    def digest(self, *parts):
        h = hashlib.sha1(self.ipad)
        for p in parts:
            h.update(p)
        return hashlib.sha1(self.opad + h.digest()).digest()


def _const_eq(a, b):
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


class _Stream:
    __slots__ = ("roc", "s_l", "window", "started", "srtcp_index", "rtcp_top", "rtcp_window")

    def __init__(self):
        self.roc = 0
        self.s_l = 0
        self.window = 0          # bit k set: index (highest - k) seen
        self.started = False
        self.srtcp_index = 0     # next SRTCP index sent
        self.rtcp_top = -1       # highest SRTCP index received
        self.rtcp_window = 0


class OwnSrtp:
    engine = "own"

    def __init__(self, suite, key_salt, aes=None):
        self.tag_len = SUITES[suite]
        self._aes_new = aes or _cryptolib_aes
        self._ctr = bytearray(16)          # counter block and cipher output, reused
        self._blk = bytearray(16)
        mk, ms = bytes(key_salt[:16]), bytes(key_salt[16:])
        prf = self._aes_new(mk)
        self.rtp_key = self._derive(prf, ms, 0, 16)
        self.rtp_auth = self._derive(prf, ms, 1, 20)
        self.rtp_salt = self._derive(prf, ms, 2, 14)
        self.rtcp_key = self._derive(prf, ms, 3, 16)
        self.rtcp_auth = self._derive(prf, ms, 4, 20)
        self.rtcp_salt = self._derive(prf, ms, 5, 14)
        self._rtp_aes = self._aes_new(self.rtp_key)
        self._rtcp_aes = self._aes_new(self.rtcp_key)
        self._rtp_mac = _Hmac(self.rtp_auth)
        self._rtcp_mac = _Hmac(self.rtcp_auth)
        self._streams = {}

    # RFC 3711 §4.3.1 with kdr 0 (r = 0): x = (label << 48) XOR master salt,
    # then the AES-CM keystream of the master key from IV = x * 2^16
    def _derive(self, prf, salt, label, n):
        x = bytearray(salt)
        x[7] ^= label
        iv = bytes(x) + b"\x00\x00"
        return self._keystream(prf, iv, n)

    def _keystream(self, aes, iv, n):
        out = bytearray((n + 15) & ~15)
        ctr, blk = self._ctr, self._blk
        ctr[:] = iv
        base = (iv[14] << 8) | iv[15]
        for j in range(len(out) // 16):
            c = (base + j) & 0xFFFF
            ctr[14] = c >> 8
            ctr[15] = c & 0xFF
            aes.encrypt(ctr, blk)
            out[16 * j:16 * j + 16] = blk
        return bytes(out[:n])

    def _crypt(self, aes, salt, ssrc, index, buf, off, n):
        # IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16)  (§4.1.1)
        iv = bytearray(salt + b"\x00\x00")
        for k in range(4):
            iv[4 + k] ^= (ssrc >> (24 - 8 * k)) & 0xFF
        for k in range(6):
            iv[8 + k] ^= (index >> (40 - 8 * k)) & 0xFF
        if n:
            _xor_into(buf, off, self._keystream(aes, iv, n), n)

    def _stream(self, ssrc):
        st = self._streams.get(ssrc)
        if st is None:
            if len(self._streams) >= MAX_STREAMS:
                raise SrtpError("streams: more than %d SSRCs" % MAX_STREAMS)
            st = _Stream()
            self._streams[ssrc] = st
        return st

    # -- SRTP ---------------------------------------------------------------
    @staticmethod
    def _header_len(pkt):
        n = len(pkt)
        if n < 12 or pkt[0] >> 6 != 2:
            raise SrtpError("not an RTP packet")
        hl = 12 + 4 * (pkt[0] & 0x0F)
        if pkt[0] & 0x10:
            if n < hl + 4:
                raise SrtpError("truncated header extension")
            hl += 4 + 4 * ((pkt[hl + 2] << 8) | pkt[hl + 3])
        if hl > n:
            raise SrtpError("truncated header")
        return hl

    def protect(self, pkt):
        hl = self._header_len(pkt)
        seq = (pkt[2] << 8) | pkt[3]
        ssrc = int.from_bytes(bytes(pkt[8:12]), "big")
        st = self._stream(ssrc)
        if st.started and seq < st.s_l and st.s_l - seq > 0x8000:
            st.roc = (st.roc + 1) & 0xFFFFFFFF     # the sequence number wrapped
        if not st.started or seq > st.s_l or st.s_l - seq > 0x8000:
            st.s_l = seq
        st.started = True
        buf = bytearray(pkt)
        self._crypt(self._rtp_aes, self.rtp_salt, ssrc, (st.roc << 16) | seq,
                    buf, hl, len(buf) - hl)
        tag = self._rtp_mac.digest(buf, st.roc.to_bytes(4, "big"))[:self.tag_len]
        return bytes(buf) + tag

    def unprotect(self, pkt):
        if len(pkt) < 12 + self.tag_len:
            raise SrtpError("too short")
        body = pkt[:len(pkt) - self.tag_len]
        hl = self._header_len(body)
        seq = (pkt[2] << 8) | pkt[3]
        ssrc = int.from_bytes(bytes(pkt[8:12]), "big")
        st = self._stream(ssrc)
        # §3.3.1: the rollover counter the sender used, guessed from s_l
        roc = st.roc
        if st.started:
            if st.s_l < 0x8000:
                if seq - st.s_l > 0x8000:
                    roc = (roc - 1) & 0xFFFFFFFF
            elif st.s_l - 0x8000 > seq:
                roc = (roc + 1) & 0xFFFFFFFF
        index = (roc << 16) | seq
        if st.started:
            self._replay_check(st, index)
        tag = self._rtp_mac.digest(body, roc.to_bytes(4, "big"))[:self.tag_len]
        if not _const_eq(tag, pkt[len(pkt) - self.tag_len:]):
            raise SrtpError("authentication failed")
        buf = bytearray(body)
        self._crypt(self._rtp_aes, self.rtp_salt, ssrc, index, buf, hl, len(buf) - hl)
        self._replay_add(st, index, roc, seq)
        return bytes(buf)

    @staticmethod
    def _highest(st):
        return (st.roc << 16) | st.s_l

    def _replay_check(self, st, index):
        top = self._highest(st)
        if index > top:
            return
        d = top - index
        if d >= REPLAY_WINDOW:
            raise SrtpError("replay: too old")
        if st.window >> d & 1:
            raise SrtpError("replay")

    def _replay_add(self, st, index, roc, seq):
        if not st.started:
            st.started, st.roc, st.s_l, st.window = True, roc, seq, 1
            return
        top = self._highest(st)
        if index > top:
            shift = index - top
            st.window = ((st.window << shift) | 1) & ((1 << REPLAY_WINDOW) - 1) \
                if shift < REPLAY_WINDOW else 1
            st.roc, st.s_l = roc, seq
        else:
            st.window |= 1 << (top - index)

    # -- SRTCP (§3.4): 8 bytes clear, E flag + 31-bit index, 80-bit tag -------
    def protect_rtcp(self, pkt):
        if len(pkt) < 8:
            raise SrtpError("not an RTCP packet")
        ssrc = int.from_bytes(bytes(pkt[4:8]), "big")
        st = self._stream(ssrc)
        index = st.srtcp_index
        st.srtcp_index = (index + 1) & _MASK31
        buf = bytearray(pkt)
        self._crypt(self._rtcp_aes, self.rtcp_salt, ssrc, index, buf, 8, len(buf) - 8)
        buf += (0x80000000 | index).to_bytes(4, "big")
        return bytes(buf) + self._rtcp_mac.digest(buf)[:SRTCP_TAG]

    def unprotect_rtcp(self, pkt):
        if len(pkt) < 8 + 4 + SRTCP_TAG:
            raise SrtpError("too short")
        body = pkt[:len(pkt) - SRTCP_TAG]
        if not _const_eq(self._rtcp_mac.digest(body)[:SRTCP_TAG], pkt[len(body):]):
            raise SrtpError("authentication failed")
        ei = int.from_bytes(bytes(body[-4:]), "big")
        index = ei & _MASK31
        buf = bytearray(body[:-4])
        ssrc = int.from_bytes(bytes(buf[4:8]), "big")
        st = self._stream(ssrc)
        d = st.rtcp_top - index
        if d >= REPLAY_WINDOW or (d >= 0 and st.rtcp_window >> d & 1):
            raise SrtpError("replay")
        if d < 0:
            st.rtcp_window = ((st.rtcp_window << -d) | 1) & ((1 << REPLAY_WINDOW) - 1) \
                if -d < REPLAY_WINDOW else 1
            st.rtcp_top = index
        else:
            st.rtcp_window |= 1 << d
        if ei & 0x80000000:
            self._crypt(self._rtcp_aes, self.rtcp_salt, ssrc, index, buf, 8, len(buf) - 8)
        return bytes(buf)
