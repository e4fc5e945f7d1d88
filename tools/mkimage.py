"""Build, sign and inspect firmware images (layout: tools/imagelayout.py).

    tools/mkimage [-o build/firmware-cpython.img] [--runtime cpython|micropython]
                  [--board NAME]... [--version V] [--key SECRET] [--config FILE]
                  [--prompts DIR]
    tools/mkimage --inspect IMAGE [--board NAME] [--pubkey FILE] [--list]
    tools/mkimage --genkey SECRET        (writes SECRET and SECRET.pub, hex)

The payload holds the device modules (firmware/, sip/, hal/, boards/) as .py
for CPython targets (hal/linux included) or compiled with mpy-cross to .mpy
for MicroPython targets (hal/linux left out), plus the prompts (prompts/NAME:
--prompts DIR, default the repository's prompts/, the default set that
tools/gen-prompts.py makes from text) and the factory configuration (default.conf; tools/image/default.conf unless
--config).  --version V (default: firmware/version.py) is written into the
header and into the payload's firmware/version.py.  --key signs the header (Ed25519; firmware/ed25519.py).  --inspect
prints the header, then verifies the image as the appliance would; with
--board or --pubkey it refuses a wrong-board or unsigned/forged image.  Exit
status: 0 ok, 1 refused image, 2 usage error.
"""
import binascii
import hashlib
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools import imagelayout  # noqa: E402
from tools.mpycheck import device_modules, DEVICE_DIRS  # noqa: E402
from tools.progress import Progress  # noqa: E402
from firmware import ed25519, image, version  # noqa: E402

DEFAULT_CONFIG = os.path.join(ROOT, "tools", "image", "default.conf")
# the default prompt set, made from text on the build host (tools/gen-prompts.py)
DEFAULT_PROMPTS = os.path.join(ROOT, "prompts")


class Usage(Exception):
    pass


def all_boards():
    return sorted(n[:-3] for n in os.listdir(os.path.join(ROOT, "boards"))
                  if n.endswith(".py") and n != "__init__.py")


def cpython_modules():
    for top in DEVICE_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                if name.endswith(".py"):
                    yield os.path.relpath(os.path.join(dirpath, name), ROOT)


def _source(rel, version_text):
    """A module's source; firmware/version.py says the image's version."""
    with open(os.path.join(ROOT, rel), "rb") as f:
        data = f.read()
    if rel == os.path.join("firmware", "version.py") and version_text:
        lines = [b'VERSION = "%s"' % version_text.encode() if l.startswith(b"VERSION =") else l
                 for l in data.split(b"\n")]
        data = b"\n".join(lines)
    return data


def payload_files(runtime, config, prompts, quiet=False, version_text=None):
    files = []
    if runtime == "cpython":
        mods = list(cpython_modules())
        for rel in mods:
            files.append((rel, _source(rel, version_text)))
    else:
        mpy_cross = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
        if not os.path.exists(mpy_cross):
            raise Usage("mpy-cross is missing (%s): run tools/ensure-env" % mpy_cross)
        mods = list(device_modules())
        bar = None if quiet else Progress("mkimage: mpy-cross", len(mods))
        with tempfile.TemporaryDirectory() as tmp:
            for rel in mods:
                out = os.path.join(tmp, "m.mpy")
                src = rel
                if rel == os.path.join("firmware", "version.py"):
                    src = os.path.join(tmp, "version.py")
                    with open(src, "wb") as f:
                        f.write(_source(rel, version_text))
                r = subprocess.run([mpy_cross, "-s", rel, "-o", out, src], cwd=ROOT,
                                   capture_output=True, text=True)
                if r.returncode:
                    raise Usage("mpy-cross failed on %s:\n%s" % (rel, r.stderr.strip()))
                with open(out, "rb") as f:
                    files.append((rel[:-3] + ".mpy", f.read()))
                if bar:
                    bar.step(1, rel)
        if bar:
            bar.finish("%d modules" % len(mods))
    with open(config, "rb") as f:
        files.append(("default.conf", f.read()))
    if prompts:
        for name in sorted(os.listdir(prompts)):
            p = os.path.join(prompts, name)
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    files.append(("prompts/" + name, f.read()))
    for name, data in files:
        if len(data) > image.MAX_FILE:
            raise Usage("%s is %d bytes, over the image's per-file bound %d" % (name, len(data), image.MAX_FILE))
    if len(files) > image.MAX_ENTRIES:
        raise Usage("%d files, over the image's bound %d" % (len(files), image.MAX_ENTRIES))
    return files


def read_key(path, size, what):
    try:
        with open(path) as f:
            raw = binascii.unhexlify(f.read().strip())
    except (OSError, ValueError) as e:
        raise Usage("cannot read the %s %s: %s" % (what, path, e))
    if len(raw) != size:
        raise Usage("%s %s: %d bytes, expected %d (hex)" % (what, path, len(raw), size))
    return raw


def build(out, runtime="cpython", boards=None, version_text=None, key=None,
          config=DEFAULT_CONFIG, prompts=None, build_time=None, quiet=False):
    """Write an image to out; returns (header bytes, payload size)."""
    if runtime not in imagelayout.RUNTIMES:
        raise Usage("--runtime is cpython or micropython, not %r" % runtime)
    boards = boards or all_boards()
    known = all_boards()
    for b in boards:
        if b not in known:
            raise Usage("unknown board %r (boards: %s)" % (b, ", ".join(known)))
    payload = imagelayout.build_payload(payload_files(runtime, config, prompts, quiet, version_text))
    if len(payload) > image.MAX_PAYLOAD:
        raise Usage("payload %d bytes is over the %d-byte bound" % (len(payload), image.MAX_PAYLOAD))
    if build_time is None:
        build_time = int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    signed = imagelayout.build_signed(
        version_text or version.VERSION, build_time, runtime, boards, len(payload),
        hashlib.sha256(payload).digest(),
        imagelayout.SIG_ED25519 if key else imagelayout.SIG_NONE)
    sig = ed25519.sign(key, signed) if key else bytes(64)
    header = imagelayout.build_header(signed, sig)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(header)
        f.write(payload)
    os.replace(tmp, out)
    return header, len(payload)


def inspect(path, board=None, pubkey=None, listing=False):
    with open(path, "rb") as f:
        head = f.read(imagelayout.HEADER_SIZE)
    try:
        h = image.Header(head)
    except image.ImageError as e:
        print("%s: refused: %s" % (path, e))
        return 1
    size = os.path.getsize(path)
    print("image: %s (%d bytes)" % (path, size))
    print("\n".join("  " + line for line in h.describe()))
    print("  build time (UTC): %s" % time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(h.build_time)))
    try:
        image.check_file(path, board=board, pubkey=pubkey)
    except image.ImageError as e:
        print("%s: refused: %s" % (path, e))
        return 1
    if h.sig_alg and pubkey is None:
        print("  signature present, not checked (no --pubkey)")
    if listing:
        with open(path, "rb") as f:
            f.read(image.HEADER_SIZE)

            def show(name, n, read):
                print("  %8d  %s" % (n, name))
            image.entries(f, h, show)
    print("%s: ok%s%s" % (path, " for board " + board if board else "",
                           ", signature verified" if pubkey is not None else ""))
    return 0


def genkey(path):
    secret = os.urandom(32)
    old = os.umask(0o077)
    try:
        with open(path, "w") as f:
            f.write(binascii.hexlify(secret).decode() + "\n")
    finally:
        os.umask(old)
    with open(path + ".pub", "w") as f:
        f.write(binascii.hexlify(ed25519.public_key(secret)).decode() + "\n")
    print("wrote %s and %s.pub" % (path, path))
    return 0


def main(argv):
    opts = {"boards": []}
    flags = {"-o": "out", "--out": "out", "--runtime": "runtime", "--version": "version",
             "--key": "key", "--config": "config", "--prompts": "prompts",
             "--inspect": "inspect", "--pubkey": "pubkey", "--genkey": "genkey"}
    i = 0
    try:
        while i < len(argv):
            a = argv[i]
            if a in ("-h", "--help"):
                print(__doc__.strip())
                return 0
            if a == "--list":
                opts["list"] = True
                i += 1
                continue
            if a == "--quiet":
                opts["quiet"] = True
                i += 1
                continue
            if a == "--board" or a in flags:
                if i + 1 >= len(argv):
                    raise Usage("%s needs a value" % a)
                if a == "--board":
                    opts["boards"].append(argv[i + 1])
                else:
                    opts[flags[a]] = argv[i + 1]
                i += 2
                continue
            raise Usage("unknown argument %r (see --help)" % a)
        if "genkey" in opts:
            return genkey(opts["genkey"])
        if "inspect" in opts:
            if len(opts["boards"]) > 1:
                raise Usage("--inspect checks one --board")
            pub = read_key(opts["pubkey"], 32, "public key") if "pubkey" in opts else None
            if not os.path.isfile(opts["inspect"]):
                raise Usage("no such image: %s" % opts["inspect"])
            return inspect(opts["inspect"], opts["boards"][0] if opts["boards"] else None, pub,
                           opts.get("list", False))
        runtime = opts.get("runtime", "cpython")
        out = opts.get("out") or os.path.join(ROOT, "build", "firmware-%s.img" % runtime)
        key = read_key(opts["key"], 32, "secret key") if "key" in opts else None
        config = opts.get("config", DEFAULT_CONFIG)
        if not os.path.isfile(config):
            raise Usage("no such configuration file: %s" % config)
        if "prompts" in opts and not os.path.isdir(opts["prompts"]):
            raise Usage("no such prompts directory: %s" % opts["prompts"])
        header, psize = build(out, runtime, opts["boards"] or None, opts.get("version"), key,
                              config, opts.get("prompts", DEFAULT_PROMPTS),
                              quiet=opts.get("quiet", False))
        print("mkimage: %s: %s image, %d bytes (header %d, payload %d)%s" % (
            out, runtime, len(header) + psize, len(header), psize, ", signed" if key else ""))
        return 0
    except Usage as e:
        print("mkimage: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
