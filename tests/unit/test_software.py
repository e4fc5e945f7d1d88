# portable: micropython
"""A/B software slots (firmware/software.py) on an in-memory flash that can
lose power after any byte written and any file operation: install, trial
boot, running, fallback, refused images, and a power cut at every step of an
install or a boot-record update always leaves a slot that boots."""
import io

from firmware import image, software
from firmware.software import SlotStore, SoftwareError
from tests.portable import raises
from tests.unit import imgbuild


class PowerCut(Exception):
    pass


class MemFlash:
    """The slot directory's file API in memory.  budget = units left before
    the power goes: one per byte written, one per rename/remove/sync/fsync.
    A write cut part-way keeps the bytes written so far."""

    def __init__(self, files=None, budget=None):
        self.files = {}
        for k, v in (files or {}).items():
            self.files[k] = bytearray(v)
        self.budget = budget
        self.dead = False

    def _op(self):
        if self.dead:
            raise PowerCut("off")
        if self.budget is not None:
            if self.budget <= 0:
                self.dead = True
                raise PowerCut("cut before an operation")
            self.budget -= 1

    def _bytes(self, name, b):
        if self.dead:
            raise PowerCut("off")
        if self.budget is not None and self.budget < len(b):
            self.files[name] += b[:self.budget]
            self.budget = 0
            self.dead = True
            raise PowerCut("cut inside a write")
        self.files[name] += b
        if self.budget is not None:
            self.budget -= len(b)

    def listdir(self):
        return list(self.files.keys())

    def exists(self, name):
        return name in self.files

    def open_read(self, name):
        if name not in self.files:
            raise OSError(2)
        return io.BytesIO(bytes(self.files[name]))

    def open_write(self, name):
        self._op()
        self.files[name] = bytearray()
        return _Writer(self, name)

    def read(self, name, limit):
        d = self.files.get(name)
        return None if d is None else bytes(d[:limit + 1])

    def write(self, name, data):
        w = self.open_write(name)
        w.write(data)
        w.close()

    def rename(self, old, new):
        self._op()
        self.files[new] = self.files.pop(old)

    def remove(self, name):
        self._op()
        self.files.pop(name, None)

    def sync(self):
        self._op()

    def snapshot(self):
        out = {}
        for k, v in self.files.items():
            out[k] = bytes(v)
        return out


class _Writer:
    def __init__(self, flash, name):
        self.flash = flash
        self.name = name

    def write(self, b):
        self.flash._bytes(self.name, bytes(b))

    def close(self):
        self.flash._op()      # fsync


def _img(version, board="sim", secret=None, size=600):
    files = [("firmware/x.py", ("V = %r\n" % version).encode() + b"#" * size),
             ("default.conf", b"set system host-name branch\n")]
    return imgbuild.image(files, secret=secret, version=version, boards=(board,))


def _store(flash):
    return SlotStore("/flash", flash=flash, board="sim", runtime="cpython")


def _fresh():
    """A flash with v1 active in slot a."""
    fl = MemFlash()
    st = _store(fl)
    slot, h = st.install(io.BytesIO(_img("v1")), into="a", activate=True)
    assert (slot, h.version) == ("a", "v1")
    return fl


def test_install_trial_running_and_fallback():
    fl = _fresh()
    st = _store(fl)
    slot, h, note = st.select()
    assert (slot, h.version, note) == ("a", "v1", "")
    assert st.install(io.BytesIO(_img("v2")))[0] == "b"
    rec = st.load()
    assert (rec["active"], rec["trial"], rec["tries"]) == ("a", "b", 0)
    slot, h, note = st.select()             # the next boot tries b once
    assert (slot, h.version) == ("b", "v2") and "trying slot b" in note
    assert not st.confirmed("b")
    assert st.running() == "slot b reached running and is now the active slot"
    assert st.confirmed("b")
    assert st.select()[0] == "b"
    # v3 into a, which never reaches running: the boot after falls back to b
    assert st.install(io.BytesIO(_img("v3")))[0] == "a"
    slot, h, _ = st.select()
    assert (slot, h.version) == ("a", "v3")
    slot, h, note = st.select()
    assert (slot, h.version) == ("b", "v2")
    assert "slot a did not reach running after 1 boot(s); back to slot b" in note
    assert st.running() is None              # b was already active
    rec = st.load()
    assert (rec["active"], rec["trial"]) == ("b", "-")
    assert len([n for n in fl.files if n.startswith("boot.")]) == software.KEEP_RECORDS


def test_refused_images_leave_the_slots_alone():
    fl = _fresh()
    st = _store(fl)
    before = fl.snapshot()
    good = _img("v2")
    cases = (
        (_img("v2", board="srx240"), "image is for board srx240, not for this board (sim)"),
        (good[:-10], "truncated image: payload ends 10 bytes early"),
        (good[:400] + bytes([good[400] ^ 1]) + good[401:], "payload SHA-256 does not match"),
        (b"GIF89a" + good[6:], "not a firmware image"),
    )
    for data, expect in cases:
        e = raises(image.ImageError, st.install, io.BytesIO(data))
        assert expect in str(e), str(e)
        files = fl.snapshot()
        for k in list(files):
            if k.startswith("boot.") and k not in before:
                files.pop(k)
        assert files == before, sorted(files)
    rec = st.load()
    assert (rec["active"], rec["trial"]) == ("a", "-")
    assert raises(SoftwareError, st.install, io.BytesIO(good), into="a")


def test_a_trusted_key_requires_signed_images():
    from firmware import ed25519
    import binascii
    secret = bytes(range(1, 33))
    fl = _fresh()
    fl.files["trusted.pub"] = bytearray(binascii.hexlify(ed25519.public_key(secret)) + b"\n")
    st = _store(fl)
    e = raises(image.ImageError, st.install, io.BytesIO(_img("v2")))
    assert "image is unsigned, and this appliance requires a signed image" in str(e)
    e = raises(image.ImageError, st.install, io.BytesIO(_img("v2", secret=bytes(32))))
    assert "signature does not verify" in str(e)
    assert st.install(io.BytesIO(_img("v2", secret=secret)))[0] == "b"
    # the unsigned factory image in slot a no longer boots either: b is the only choice
    slot, h, _ = st.select()
    assert (slot, h.version) == ("b", "v2")
    fl.files["trusted.pub"] = bytearray(b"zz\n")
    assert "not an Ed25519 public key" in str(raises(SoftwareError, st.pubkey))


def _after_cut(files):
    """Boot again on what the flash kept: the chosen slot must check."""
    fl = MemFlash(files)
    st = _store(fl)
    slot, h, _ = st.select()
    st.check_slot(slot)
    return slot, h.version, st


def _every_cut(prepare, action, step=1):
    """Run action on a copy of prepare()'s flash with the power cut after
    0, step, 2*step ... units until it completes; returns the outcomes."""
    base = prepare()
    outcomes = {}
    budget = 0
    while True:
        fl = MemFlash(base, budget=budget)
        try:
            action(_store(fl))
            done = True
        except PowerCut:
            done = False
        slot, version, st = _after_cut(fl.snapshot())
        outcomes[(slot, version)] = outcomes.get((slot, version), 0) + 1
        if done:
            return outcomes, budget
        budget += step


def test_power_cut_at_every_byte_of_an_install_keeps_a_bootable_slot():
    new = _img("v2")

    def prep():
        fl = _fresh()
        _store(fl).select()
        return fl.snapshot()
    outcomes, total = _every_cut(prep, lambda st: st.install(io.BytesIO(new)))
    # every cut up to the boot record that names b boots v1 from a; after it, v2 from b
    assert total > len(new), total
    assert set(outcomes) == {("a", "v1"), ("b", "v2")}, outcomes
    assert outcomes[("a", "v1")] > len(new) and outcomes[("b", "v2")] <= 4, outcomes


def test_power_cut_while_overwriting_an_earlier_trial():
    # b holds an untried v2; installing v3 over it must never boot a torn b
    def prep():
        fl = _fresh()
        _store(fl).install(io.BytesIO(_img("v2")))
        return fl.snapshot()
    outcomes, _ = _every_cut(prep, lambda st: st.install(io.BytesIO(_img("v3"))), step=3)
    assert ("a", "v1") in outcomes and ("b", "v3") in outcomes
    assert set(outcomes) <= {("a", "v1"), ("b", "v2"), ("b", "v3")}, outcomes


def test_power_cut_during_every_record_update():
    def prep():
        fl = _fresh()
        _store(fl).install(io.BytesIO(_img("v2")))
        return fl.snapshot()

    def boot_and_run(st):
        st.select()
        st.running()
    outcomes, _ = _every_cut(prep, boot_and_run)
    assert set(outcomes) <= {("a", "v1"), ("b", "v2")}, outcomes
    assert ("b", "v2") in outcomes


def test_boot_record_codec_refuses_torn_records():
    rec = {"seq": 3, "active": "a", "trial": "b", "tries": 1, "booted": "b", "note": "x y"}
    data = software.encode_record(rec)
    assert software.decode_record(data) == rec
    for i in range(len(data)):
        assert software.decode_record(data[:i]) is None
    bad = bytearray(data)
    bad[8] ^= 1
    assert software.decode_record(bytes(bad)) is None


def test_utc_text():
    assert software.utc_text(0) == "1970-01-01 00:00:00"
    assert software.utc_text(951782400) == "2000-02-29 00:00:00"
    assert software.utc_text(1700000000) == "2023-11-14 22:13:20"
