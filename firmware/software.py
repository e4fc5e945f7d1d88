"""A/B software slots: install an image into the inactive slot, boot it once
on trial, keep it when it reaches "running", fall back when it does not.

Files in <state>/software/ (the flash):

    a.img, b.img   the two slots: firmware images (firmware/image.py)
    X.img.tmp      a slot being written (ignored at boot, removed by the next install)
    boot.<SEQ>     the boot record, one generation per change, newest two kept:
                   "seq=7 active=a trial=b tries=0 booted=a note=...\\n#crc=1a2b3c4d\\n"
    trusted.pub    optional: an Ed25519 public key (64 hex digits); when present
                   every image must carry a signature that verifies with it
    run/<sha>/     the payload of a slot, unpacked for the interpreter to import

`request system software add IMAGE` (install()) checks the image while
copying it into the inactive slot's .tmp, fsyncs, checks the copy as read
back, renames it over the slot and only then writes a boot record naming it
the trial slot.  The active slot and the record naming it are never written
during an install, and a record generation that is torn fails its CRC, so a
power cut at any byte leaves the active slot bootable
(tests/unit/test_software.py cuts at every step).

The boot loader (`python -m firmware.software boot ...`, select()) boots the
trial slot once (tries 0 -> 1).  The appliance calls running() when it has
started its services; that makes the trial slot the active one.  A trial
that never gets there -- it crashed, hung, or the watchdog (--watchdog S)
killed it -- is given up on the next boot, which runs the active slot again.
A slot whose image fails its check is never booted.
"""
import binascii

from firmware.compat import const, mkdirs
from firmware import image
from firmware.config import store

SLOTS = ("a", "b")
MAX_TRIES = const(1)           # boots a trial slot gets to reach "running"
MAX_RECORD = const(512)
KEEP_RECORDS = const(2)
WATCHDOG_S = const(180)        # default: a trial slot must reach running in this time
MAX_NOTE = const(120)


class SoftwareError(Exception):
    pass


class FileFlash(store.FileFlash):
    """The slot directory's file API (an in-memory one in the tests): the
    configuration store's, plus streaming reads and writes for images."""

    def __init__(self, path):
        mkdirs(path)
        store.FileFlash.__init__(self, path)

    def exists(self, name):
        import os
        try:
            os.stat(self._p(name))
            return True
        except OSError:
            return False

    def open_read(self, name):
        return open(self._p(name), "rb")

    def open_write(self, name):
        return _SyncedWriter(open(self._p(name), "wb"))


class _SyncedWriter:
    def __init__(self, f):
        self.f = f

    def write(self, b):
        self.f.write(b)

    def close(self):
        from firmware.compat import fsync_file
        try:
            fsync_file(self.f)
        finally:
            self.f.close()


def _other(slot):
    return "b" if slot == "a" else "a"


def encode_record(rec):
    body = "seq=%d active=%s trial=%s tries=%d booted=%s note=%s\n" % (
        rec["seq"], rec["active"], rec["trial"], rec["tries"], rec["booted"],
        rec["note"].replace("\n", " ")[:MAX_NOTE])
    return (body + "#crc=%08x\n" % (binascii.crc32(body.encode()) & 0xFFFFFFFF)).encode()


def decode_record(data):
    """The record dict of a boot.<SEQ> file's bytes, or None if torn or corrupt."""
    if not data or len(data) > MAX_RECORD or not data.endswith(b"\n"):
        return None
    cut = data.find(b"\n#crc=")
    if cut < 0:
        return None
    body = data[:cut + 1]
    if data[cut + 1:] != ("#crc=%08x\n" % (binascii.crc32(body) & 0xFFFFFFFF)).encode():
        return None
    try:
        text = body.decode().strip()
    except UnicodeError:
        return None
    head, sep, note = text.partition(" note=")
    if not sep:
        return None
    rec = {"note": note}
    for part in head.split(" "):
        k, _, v = part.partition("=")
        rec[k] = v
    try:
        rec["seq"] = int(rec["seq"])
        rec["tries"] = int(rec["tries"])
    except (KeyError, ValueError):
        return None
    for k in ("active", "trial", "booted"):
        if rec.get(k) not in ("a", "b", "-"):
            return None
    return rec


class SlotStore:
    def __init__(self, state_dir, flash=None, board=None, runtime=None):
        self.state_dir = state_dir
        self.flash = flash or FileFlash(state_dir + "/software")
        self.board = board
        self.runtime = runtime

    # -- the boot record ---------------------------------------------------------------
    def _records(self):
        out = []
        for name in self.flash.listdir():
            if name.startswith("boot.") and name[5:].isdigit():
                out.append((int(name[5:]), name))
        out.sort()
        return out

    def load(self):
        """The newest valid boot record (a fresh one if there is none)."""
        for seq, name in reversed(self._records()):
            rec = decode_record(self.flash.read(name, MAX_RECORD))
            if rec is not None and rec["seq"] == seq:
                return rec
        return {"seq": 0, "active": "-", "trial": "-", "tries": 0, "booted": "-", "note": ""}

    def save(self, rec):
        old = self._records()
        seq = (old[-1][0] if old else 0) + 1
        rec = dict(rec)
        rec["seq"] = seq
        name = "boot.%d" % seq
        for n in self.flash.listdir():
            if n.startswith("boot.") and n.endswith(".tmp"):
                self.flash.remove(n)     # a record cut before its rename
        self.flash.write(name + ".tmp", encode_record(rec))
        self.flash.rename(name + ".tmp", name)
        self.flash.sync()
        for s, n in old[:len(old) - (KEEP_RECORDS - 1)]:
            self.flash.remove(n)
        return rec

    # -- slots ---------------------------------------------------------------------------
    def pubkey(self):
        raw = self.flash.read("trusted.pub", 200)
        if raw is None:
            return None
        try:
            key = binascii.unhexlify(raw.strip())
        except ValueError:
            key = b""
        if len(key) != 32:
            raise SoftwareError("%s/software/trusted.pub is not an Ed25519 public key "
                                "(64 hex digits)" % self.state_dir)
        return key

    def check_slot(self, slot):
        """The Header of a slot's image; raises ImageError if it cannot boot."""
        name = slot + ".img"
        if not self.flash.exists(name):
            raise image.ImageError("slot %s is empty" % slot)
        f = self.flash.open_read(name)
        try:
            return image.check(f, self.board, self.runtime, self.pubkey())
        finally:
            f.close()

    def describe_slot(self, slot):
        try:
            return self.check_slot(slot), None
        except (image.ImageError, OSError) as e:
            return None, str(e)

    def install(self, src, into=None, activate=False):
        """Check the image read from src while copying it into the inactive slot
        (or `into`); then the next boot tries it (or, with activate, it becomes
        the active slot: the factory image on a blank flash).  Returns
        (slot, Header).  Raises ImageError or SoftwareError; the active slot is
        never touched."""
        rec = self.load()
        slot = into or ("a" if rec["active"] == "-" else _other(rec["active"]))
        if slot == rec["active"] and not activate:
            raise SoftwareError("slot %s is the active slot" % slot)
        pub = self.pubkey()
        if rec["trial"] == slot:     # the old trial image is about to be overwritten
            rec["trial"] = "-"
            rec["tries"] = 0
            rec = self.save(rec)
        tmp = slot + ".img.tmp"
        self.flash.remove(tmp)
        w = self.flash.open_write(tmp)
        try:
            image.check(src, self.board, self.runtime, pub, out=w)
        except image.ImageError:
            w.close()
            self.flash.remove(tmp)
            raise
        w.close()
        r = self.flash.open_read(tmp)      # what reached the flash, read back
        try:
            h = image.check(r, self.board, self.runtime, pub)
        except image.ImageError as e:
            raise SoftwareError("slot %s did not keep the image (%s); the active slot is unchanged"
                                % (slot, e))
        finally:
            r.close()
        self.flash.rename(tmp, slot + ".img")
        self.flash.sync()
        if activate:
            rec["active"] = slot
            rec["note"] = "factory image %s installed in slot %s" % (h.version, slot)
        else:
            rec["trial"] = slot
            rec["tries"] = 0
            rec["note"] = "%s installed in slot %s; the next boot tries it" % (h.version, slot)
        self.save(rec)
        return slot, h

    def select(self):
        """At boot: the slot to run, with the record updated (booted, tries,
        fallback).  Returns (slot, Header, note); SoftwareError if no slot can boot."""
        rec = self.load()
        notes = []
        trial = rec["trial"]
        if trial != "-":
            if rec["tries"] >= MAX_TRIES:
                notes.append("slot %s did not reach running after %d boot(s); back to slot %s"
                             % (trial, rec["tries"], rec["active"]))
                trial = "-"
            else:
                h, err = self.describe_slot(trial)
                if h is None:
                    notes.append("slot %s cannot boot (%s); back to slot %s" % (trial, err, rec["active"]))
                    trial = "-"
                else:
                    rec["tries"] += 1
                    rec["booted"] = trial
                    rec["note"] = "trying slot %s (%s), boot %d of %d" % (
                        trial, h.version, rec["tries"], MAX_TRIES)
                    self.save(rec)
                    return trial, h, rec["note"]
        rec["trial"] = "-"
        rec["tries"] = 0
        order = [rec["active"]] if rec["active"] != "-" else []
        order += [s for s in SLOTS if s not in order]
        for slot in order:
            h, err = self.describe_slot(slot)
            if h is not None:
                if slot != rec["active"]:
                    if rec["active"] != "-":
                        notes.append("active slot %s cannot boot; slot %s is now active" % (rec["active"], slot))
                    rec["active"] = slot
                rec["booted"] = slot
                if notes:
                    rec["note"] = "; ".join(notes)
                self.save(rec)
                return slot, h, "; ".join(notes)
            if slot == rec["active"]:
                notes.append("active slot %s cannot boot: %s" % (slot, err))
        raise SoftwareError("no bootable slot in %s/software (%s)" % (self.state_dir, "; ".join(notes) or "both empty"))

    def running(self):
        """The booted slot reached running: a trial slot becomes the active one.
        Returns a log line or None."""
        rec = self.load()
        if rec["trial"] != "-" and rec["booted"] == rec["trial"]:
            slot = rec["trial"]
            rec["active"] = slot
            rec["trial"] = "-"
            rec["tries"] = 0
            rec["note"] = "slot %s reached running and is now the active slot" % slot
            self.save(rec)
            return rec["note"]
        return None

    def confirmed(self, slot):
        rec = self.load()
        return rec["active"] == slot and rec["trial"] == "-"


# -- the appliance side --------------------------------------------------------------------
def _store(app):
    from firmware.compat import MICROPYTHON
    return SlotStore(app.state_dir, board=app.opts.board,
                     runtime="micropython" if MICROPYTHON else "cpython")


def running(app):
    """The appliance reached running (through firmware/softwarecmd.py)."""
    try:
        line = _store(app).running()
    except (OSError, SoftwareError) as e:
        app.log.write("error", "software: cannot record that this slot is running: %s" % e)
        return
    if line:
        app.log.info("software: " + line)


def utc_text(t):
    """YYYY-MM-DD HH:MM:SS of Unix seconds (civil-from-days; no time module)."""
    days, rem = divmod(int(t), 86400)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    return "%04d-%02d-%02d %02d:%02d:%02d" % (y, m, d, rem // 3600, rem // 60 % 60, rem % 60)


def show(app, args):
    store = _store(app)
    rec = store.load()
    lines = ["Slot  State                Version          Runtime      Built (UTC)          Size"]
    for slot in SLOTS:
        states = []
        if rec["active"] == slot:
            states.append("active")
        if rec["trial"] == slot:
            states.append("trial")
        if rec["booted"] == slot:
            states.append("booted")
        h, err = store.describe_slot(slot)
        if h is None:
            lines.append("%-5s %-20s %s" % (slot, ",".join(states) or "-", err))
            continue
        lines.append("%-5s %-20s %-16s %-12s %-20s %d" % (
            slot, ",".join(states) or "inactive", h.version[:16], h.runtime, utc_text(h.build_time),
            h.payload_size + image.HEADER_SIZE))
    if rec["trial"] != "-":
        lines.append("Next boot: slot %s on trial (boot %d of %d); it becomes active once it reaches running"
                     % (rec["trial"], rec["tries"] + 1, MAX_TRIES))
    elif rec["active"] != "-":
        lines.append("Next boot: slot %s" % rec["active"])
    else:
        lines.append("Next boot: no slot installed (running from %s)" % _origin())
    try:
        signed = "required (trusted.pub)" if store.pubkey() else "not required"
    except SoftwareError as e:
        signed = str(e)
    lines.append("Signed images: %s" % signed)
    if rec["note"]:
        lines.append("Last event: %s" % rec["note"])
    return "\n".join(lines)


def _origin():
    import firmware
    path = getattr(firmware, "__file__", "") or "?"
    return path.rsplit("/", 2)[0] if "/" in path else path


def add(app, args):
    from firmware.commands import CommandError
    if len(args) != 1:
        raise CommandError("usage: request system software add IMAGE-FILE")
    path = args[0]
    try:
        f = open(path, "rb")
    except OSError as e:
        raise CommandError("cannot open %s: %s" % (path, e))
    try:
        slot, h = _store(app).install(f)
    except (image.ImageError, SoftwareError, OSError) as e:
        raise CommandError("software add refused: %s" % e)
    finally:
        f.close()
    app.log.info("software: %s %s installed in slot %s" % (path, h.version, slot))
    return ("Installed %s (%s, built %s UTC) in slot %s.\n"
            "The next boot runs it (request system reboot); if it does not reach running, "
            "the boot after that returns to the active slot." % (
                h.version, h.runtime, utc_text(h.build_time), slot))


# -- the boot loader -------------------------------------------------------------------------
USAGE = """usage: python -m firmware.software boot --state DIR [--board NAME] [--factory IMAGE]
                                   [--run-dir DIR] [--unpacked DIR] [--watchdog S]
                                   [--reboot-on-exit]
                                   [-- APPLIANCE-ARGS]
Boot the appliance from its A/B slots in DIR/software: install the factory
image into slot a on a blank flash, pick the slot (trial, active, or fall
back), unpack its payload under --run-dir (default DIR/software/run) unless
--unpacked DIR already holds it (its .complete names the payload), commit
the image's default.conf on a flash without a configuration, then run
`python -m firmware --state DIR --board NAME APPLIANCE-ARGS` from it.  A
trial slot that has not reached running within --watchdog seconds (default
%d) is stopped and the board reboots into the previous slot.  With
--reboot-on-exit an appliance that exits (request system reboot) is booted
again, as the hardware would.""" % WATCHDOG_S


def unpack(store, slot, h, run_dir):
    """The payload of a checked slot under run_dir/<sha prefix>/ (reused when
    complete); other unpacked payloads are removed.  Returns the directory."""
    import os
    tag = binascii.hexlify(h.sha256[:6]).decode()
    dest = run_dir + "/" + tag
    mkdirs(run_dir)
    for name in os.listdir(run_dir):
        if name != tag:
            _rmtree(run_dir + "/" + name)
    try:
        os.stat(dest + "/.complete")
        return dest
    except OSError:
        pass
    _rmtree(dest)
    image.extract(store.flash.path + "/" + slot + ".img", dest, store.pubkey())
    with open(dest + "/.complete", "w") as f:
        f.write(tag + "\n")
    return dest


def _unpacked(path, h):
    """--unpacked DIR when it holds this image's payload (its .complete names
    the payload's SHA-256 prefix): the factory payload in the QEMU initramfs,
    precompiled, used without unpacking the slot again."""
    if not path:
        return None
    try:
        with open(path + "/.complete") as f:
            tag = f.read().strip()
    except OSError:
        return None
    return path if tag == binascii.hexlify(h.sha256[:6]).decode() else None


def _rmtree(path):
    import os
    try:
        st = os.stat(path)
    except OSError:
        return
    if st[0] & 0x4000:
        for name in os.listdir(path):
            _rmtree(path + "/" + name)
        os.rmdir(path)
    else:
        os.remove(path)


def _has_config(state):
    import os
    try:
        return any(n.startswith("c.") and not n.endswith(".tmp") for n in os.listdir(state + "/config"))
    except OSError:
        return False


def _install_prompts(src, state):
    import os
    try:
        names = os.listdir(src + "/prompts")
    except OSError:
        return
    mkdirs(state + "/prompts")
    for name in names:
        dst = state + "/prompts/" + name
        try:
            os.stat(dst)
            continue        # the user's own prompt stays
        except OSError:
            pass
        with open(src + "/prompts/" + name, "rb") as i, open(dst + ".tmp", "wb") as o:
            while True:
                b = i.read(4096)
                if not b:
                    break
                o.write(b)
        os.rename(dst + ".tmp", dst)


def parse_boot_args(argv):
    opts = {"state": None, "board": "sim", "factory": None, "run_dir": None, "unpacked": None,
            "watchdog": WATCHDOG_S, "reboot": False, "rest": []}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            opts["rest"] = argv[i + 1:]
            break
        if a == "--reboot-on-exit":
            opts["reboot"] = True
            i += 1
            continue
        key = {"--state": "state", "--board": "board", "--factory": "factory",
               "--run-dir": "run_dir", "--watchdog": "watchdog", "--unpacked": "unpacked"}.get(a)
        if key is None or i + 1 >= len(argv):
            raise SoftwareError("unknown or incomplete option %r" % a)
        opts[key] = argv[i + 1]
        i += 2
    if not opts["state"]:
        raise SoftwareError("--state DIR is required")
    try:
        opts["watchdog"] = int(opts["watchdog"])
    except ValueError:
        raise SoftwareError("--watchdog takes seconds, not %r" % opts["watchdog"])
    if not 1 <= opts["watchdog"] <= 3600:
        raise SoftwareError("--watchdog is 1..3600 seconds")
    return opts


def prepare(opts, out=print):
    """One boot's choice: (slot, directory to import from, appliance argv)."""
    from firmware.compat import MICROPYTHON
    state = opts["state"]
    mkdirs(state)
    store = SlotStore(state, board=opts["board"], runtime="micropython" if MICROPYTHON else "cpython")
    rec = store.load()
    if rec["active"] == "-" and opts["factory"]:
        blank = True
        for slot in SLOTS:
            if store.describe_slot(slot)[0] is not None:
                blank = False
        if blank:
            with open(opts["factory"], "rb") as f:
                slot, h = store.install(f, into="a", activate=True)
            out("boot: factory image %s installed in slot a" % h.version)
    slot, h, note = store.select()
    if note:
        out("boot: " + note)
    src = _unpacked(opts["unpacked"], h)
    if src is None:
        src = unpack(store, slot, h, opts["run_dir"] or state + "/software/run")
    _install_prompts(src, state)
    argv = ["--state", state, "--board", opts["board"]]
    if not _has_config(state):
        argv += ["--config", src + "/default.conf"]
    out("boot: slot %s, firmware %s (%s)" % (slot, h.version, h.runtime))
    return store, slot, src, argv + opts["rest"]


def _supervise(store, slot, src, argv, watchdog_s, out):
    """CPython: run the appliance as a child, stop it if a trial slot has not
    reached running in time.  Returns its exit status or None (watchdog)."""
    import os
    import sys
    import select
    from firmware.compat import ticks_ms, ticks_diff
    env = dict(os.environ)
    env["PYTHONPATH"] = src
    pid = os.fork()
    if pid == 0:
        try:
            os.execve(sys.executable, [sys.executable, "-m", "firmware"] + argv, env)
        finally:
            os._exit(127)
    start = ticks_ms()
    watching = not store.confirmed(slot)
    poller = select.poll()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if watching:
            if store.confirmed(slot):
                watching = False
            elif ticks_diff(ticks_ms(), start) > watchdog_s * 1000:
                out("boot: watchdog: slot %s did not reach running in %d s; rebooting" % (slot, watchdog_s))
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                return None
        poller.poll(100)       # no fds: a 100 ms wait between checks


def boot_main(argv, out=print):
    try:
        opts = parse_boot_args(argv)
    except SoftwareError as e:
        out("boot: %s" % e)
        out(USAGE)
        return 2
    from firmware.compat import MICROPYTHON
    while True:
        try:
            store, slot, src, app_argv = prepare(opts, out)
        except (SoftwareError, image.ImageError, OSError) as e:
            out("boot: cannot boot: %s" % e)
            return 1
        if MICROPYTHON:
            return _run_inprocess(src, app_argv)
        rc = _supervise(store, slot, src, app_argv, opts["watchdog"], out)
        if rc is not None and not opts["reboot"]:
            return rc
        out("boot: rebooting")


def _run_inprocess(src, argv):
    """MicroPython: no fork; the loader's own modules are dropped and the
    appliance is imported from the slot's payload."""
    import sys
    for name in list(sys.modules):
        if name.split(".")[0] in ("firmware", "sip", "hal", "boards"):
            del sys.modules[name]
    sys.path.insert(0, src)
    sys.argv[:] = ["firmware"] + argv
    __import__("firmware.__main__")
    return 0


if __name__ == "__main__":
    import sys
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        sys.exit(0 if args else 2)
    if args[0] != "boot":
        print("firmware.software: unknown command %r\n%s" % (args[0], USAGE))
        sys.exit(2)
    sys.exit(boot_main(args[1:]))
