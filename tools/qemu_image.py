"""Build the arm64 boot files for `./flash.sh qemu` and the QEMU test tier.

    python tools/qemu_image.py --fetch [--cache DIR]   (downloads only; tools/ensure-env --apt)
    python tools/qemu_image.py [--out build/qemu] [--image build/firmware-cpython.img]
                               [--cache DIR]
                               [--boot [--sip-port N] [--state-disk FILE] [--fresh] [--board B]
                                       [--share DIR]]

From Debian bookworm's arm64 archive (fetched with `apt-get download`
through a private apt configuration, so the host's apt state is not
touched) it takes the kernel (linux-image-arm64), busybox-static and
python3.11-minimal with the libraries they need, and assembles:

    OUT/vmlinuz          the kernel
    OUT/initramfs.gz     busybox, CPython 3.11, the kernel modules for
                         virtio network/disk/9p and ext4, /init, the firmware
                         image (/firmware.img, the factory image of slot a)
                         and its payload unpacked in /factory with
                         precompiled .pyc
    OUT/manifest.txt     what went in, with sizes

Downloads and the unpacked packages are cached in --cache (default
$BRANCH_VOICE_CACHE or ~/.cache/branch-voice/qemu-arm64); a second run
downloads nothing.  Needs apt-get and dpkg-deb, and deb.debian.org on the
first run (the cpio archive is written here, no cpio tool).  --boot then runs
qemu-system-aarch64 -M virt with the console on this terminal, UDP port N
(default 5060) on 127.0.0.1 forwarded to the appliance's SIP port, and the
flash on an ext4 disk (OUT/state.img; made when missing or with --fresh);
--share DIR appears read-only as /mnt/host in the guest (9p), e.g. for
`request system software add /mnt/host/new.img`.
"""
import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools.progress import Progress  # noqa: E402

SUITES = ("bookworm", "bookworm-updates")
SECURITY = "bookworm-security"
PACKAGES = ("busybox-static", "python3.11-minimal", "libpython3.11-minimal",
            "libpython3.11-stdlib", "libc6", "libgcc-s1", "libexpat1", "zlib1g", "libssl3")
KERNEL_META = "linux-image-arm64"
# kernel modules the appliance VM needs (their dependencies are added from
# each module's own `depends=`)
MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "ext4", "9p", "9pnet_virtio",
           "crc32c_generic")
STDLIB_SKIP = ("test", "idlelib", "tkinter", "lib2to3", "ensurepip", "pydoc_data",
               "distutils", "turtledemo", "config-3.11-aarch64-linux-gnu", "sqlite3",
               "curses", "dbm", "venv", "unittest", "asyncio", "multiprocessing",
               "xmlrpc", "wsgiref", "concurrent", "__phello__")

INIT = r"""#!/bin/busybox sh
# /init of the branch-voice QEMU image (tools/qemu_image.py)
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
hostname branch
for m in $(cat /modules/order); do insmod /modules/$m.ko 2>/dev/null; done
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
mkdir -p /state /mnt/host
n=0
while [ ! -b /dev/vda ] && [ $n -lt 50 ]; do n=$((n+1)); usleep 100000; done
if [ -b /dev/vda ]; then
    mount -t ext4 -o data=ordered /dev/vda /state || echo "init: cannot mount the state disk"
else
    echo "init: no state disk (/dev/vda): the flash is in RAM"
fi
grep -q hostshare /sys/bus/virtio/drivers/9pnet_virtio/*/mount_tag 2>/dev/null \
    && mount -t 9p -o trans=virtio,version=9p2000.L,ro hostshare /mnt/host
echo "init: userland up at $(cut -d' ' -f1 /proc/uptime) s"
args=$(cat /proc/cmdline)
board=sim
for a in $args; do case "$a" in bv.board=*) board=${a#bv.board=} ;; esac; done
cd /
PYTHONPATH=/factory python3.11 -m firmware.software boot --state /state/appliance \
    --board "$board" --factory /firmware.img --unpacked /factory --reboot-on-exit \
    -- --console /dev/ttyAMA0 --sip-host 0.0.0.0 --sip-port 5060
echo "init: the boot loader ended; powering off"
sync
poweroff -f
"""


class BuildError(Exception):
    pass


def cache_dir(arg=None):
    return arg or os.environ.get("BRANCH_VOICE_CACHE") and os.path.join(
        os.environ["BRANCH_VOICE_CACHE"], "qemu-arm64") or os.path.join(
        os.path.expanduser("~"), ".cache", "branch-voice", "qemu-arm64")


def _need(tool, package):
    if shutil.which(tool) is None:
        raise BuildError("%s is missing: install the Debian package %s" % (tool, package))


class Apt:
    """apt-get/apt-cache on a private state directory for arm64."""

    def __init__(self, root):
        self.root = root
        for d in ("lists/partial", "archives/partial", "preferences.d"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        src = os.path.join(root, "sources.list")
        with open(src, "w") as f:
            for s in SUITES:
                f.write("deb [arch=arm64] http://deb.debian.org/debian %s main\n" % s)
            f.write("deb [arch=arm64] http://deb.debian.org/debian-security %s main\n" % SECURITY)
        status = os.path.join(root, "status")
        if not os.path.exists(status):
            open(status, "w").close()
        self.opts = [
            "-o", "APT::Architecture=arm64", "-o", "APT::Architectures::=arm64",
            "-o", "Dir::State=" + root, "-o", "Dir::State::Lists=" + os.path.join(root, "lists"),
            "-o", "Dir::State::status=" + status, "-o", "Dir::Cache=" + root,
            "-o", "Dir::Cache::archives=" + os.path.join(root, "archives"),
            "-o", "Dir::Etc::SourceList=" + src, "-o", "Dir::Etc::SourceParts=/nonexistent",
            "-o", "Dir::Etc::PreferencesParts=" + os.path.join(root, "preferences.d"),
            "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root", "-qq"]

    def run(self, tool, *args, cwd=None):
        r = subprocess.run([tool] + self.opts + list(args), cwd=cwd, capture_output=True, text=True)
        if r.returncode:
            raise BuildError("%s %s failed:\n%s" % (tool, " ".join(args), (r.stderr or r.stdout).strip()))
        return r.stdout

    def update(self):
        self.run("apt-get", "update")

    def kernel_package(self):
        out = self.run("apt-cache", "depends", KERNEL_META)
        m = re.search(r"Depends: (linux-image-[0-9][^\s]*-arm64)\b", out)
        if not m:
            raise BuildError("cannot resolve %s:\n%s" % (KERNEL_META, out))
        return m.group(1)


def fetch(cache):
    """The .deb files, downloaded once; returns {package: path}."""
    debs = os.path.join(cache, "debs")
    manifest = os.path.join(cache, "debs.txt")
    if os.path.exists(manifest):
        with open(manifest) as f:
            got = dict(line.split(None, 1) for line in f.read().splitlines() if line)
        got = {k: v.strip() for k, v in got.items()}
        if all(os.path.exists(os.path.join(debs, v)) for v in got.values()):
            return {k: os.path.join(debs, v) for k, v in got.items()}
    _need("apt-get", "apt")
    _need("dpkg-deb", "dpkg")
    os.makedirs(debs, exist_ok=True)
    apt = Apt(os.path.join(cache, "apt"))
    bar = Progress("qemu: apt-get update (arm64)", 1)
    apt.update()
    bar.step(1)
    bar.finish()
    names = list(PACKAGES) + [apt.kernel_package()]
    bar = Progress("qemu: apt-get download", len(names))
    got = {}
    for name in names:
        before = set(os.listdir(debs))
        apt.run("apt-get", "download", name, cwd=debs)
        new = [n for n in set(os.listdir(debs)) - before if n.endswith(".deb")]
        if not new:
            cands = [n for n in os.listdir(debs) if n.startswith(name + "_")]
            if not cands:
                raise BuildError("apt-get download %s left no .deb" % name)
            new = sorted(cands)[-1:]
        got[name] = new[0]
        bar.step(1, name)
    bar.finish("%d packages" % len(names))
    with open(manifest + ".tmp", "w") as f:
        for k, v in sorted(got.items()):
            f.write("%s %s\n" % (k, v))
    os.replace(manifest + ".tmp", manifest)
    return {k: os.path.join(debs, v) for k, v in got.items()}


def unpack(cache, debs):
    """Every package unpacked into one tree (cached by the set of .debs)."""
    tag = hashlib.sha256("\n".join(sorted(os.path.basename(p) for p in debs.values())).encode()).hexdigest()[:12]
    tree = os.path.join(cache, "root-" + tag)
    if os.path.exists(os.path.join(tree, ".complete")):
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(tree)
    bar = Progress("qemu: dpkg-deb -x", len(debs))
    for name, path in sorted(debs.items()):
        r = subprocess.run(["dpkg-deb", "-x", path, tree], capture_output=True, text=True)
        if r.returncode:
            raise BuildError("dpkg-deb -x %s: %s" % (path, r.stderr.strip()))
        bar.step(1, name)
    bar.finish()
    for d in os.listdir(cache):
        if d.startswith("root-") and d != "root-" + tag:
            shutil.rmtree(os.path.join(cache, d), ignore_errors=True)
    open(os.path.join(tree, ".complete"), "w").close()
    return tree


class Cpio:
    """A newc cpio archive in memory (what the kernel unpacks as initramfs)."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1
        self.seen = set()

    def _entry(self, name, mode, data=b"", mtime=0):
        name = name.lstrip("/")
        if name in self.seen:
            return
        self.seen.add(name)
        nb = name.encode() + b"\0"
        head = "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x" % (
            self.ino, mode, 0, 0, 1, mtime, len(data), 0, 0, 0, 0, len(nb), 0)
        self.ino += 1
        out = head.encode() + nb
        out += b"\0" * ((4 - len(out) % 4) % 4)
        out += data
        out += b"\0" * ((4 - len(data) % 4) % 4)
        self.buf.write(out)

    def dir(self, name):
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            self._entry("/".join(parts[:i]), stat.S_IFDIR | 0o755)

    def file(self, name, data, mode=0o644):
        self.dir(os.path.dirname(name.strip("/")) or ".")
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        self.dir(os.path.dirname(name.strip("/")) or ".")
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def add_tree(self, src, dest, skip=()):
        for dirpath, dirnames, filenames in os.walk(src):
            rel = os.path.relpath(dirpath, src)
            dirnames[:] = [d for d in dirnames if d not in skip]
            target = dest if rel == "." else dest + "/" + rel
            self.dir(target)
            for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                p = os.path.join(dirpath, n)
                if os.path.islink(p):
                    self.symlink(target + "/" + n, os.readlink(p))
                elif os.path.isfile(p):
                    with open(p, "rb") as f:
                        self.file(target + "/" + n, f.read(), os.stat(p).st_mode & 0o777)

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def module_order(tree):
    """The MODULES and their dependencies, dependencies first: [(name, path)]."""
    kdirs = os.listdir(os.path.join(tree, "lib", "modules"))
    if len(kdirs) != 1:
        raise BuildError("expected one kernel in the packages, found %s" % kdirs)
    base = os.path.join(tree, "lib", "modules", kdirs[0], "kernel")
    index = {}
    for dirpath, _, filenames in os.walk(base):
        for n in filenames:
            if n.endswith(".ko"):
                index[n[:-3].replace("-", "_")] = os.path.join(dirpath, n)
    order = []

    def visit(name, stack=()):
        key = name.replace("-", "_")
        if key in [k for k, _ in order]:
            return
        if key not in index:
            return      # built into the kernel
        with open(index[key], "rb") as f:
            data = f.read()
        m = re.search(rb"depends=([A-Za-z0-9_,\-]*)\0", data)
        for dep in (m.group(1).decode().split(",") if m and m.group(1) else []):
            if dep and dep not in stack:
                visit(dep, stack + (key,))
        order.append((key, index[key]))
    for mod in MODULES:
        visit(mod)
    return kdirs[0], order


def compile_pyc(tree):
    """Precompile .py under tree with this CPython 3.11 (same bytecode as Debian's
    3.11): the guest then skips compiling under emulation."""
    if sys.version_info[:2] != (3, 11):
        return False
    r = subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0",
                        "--invalidation-mode", "unchecked-hash", tree], capture_output=True, text=True)
    return r.returncode == 0


def build(out, image_path, cache=None):
    from firmware import image
    cache = cache_dir(cache)
    os.makedirs(cache, exist_ok=True)
    if not os.path.isfile(image_path):
        raise BuildError("no firmware image at %s: run ./flash.sh image" % image_path)
    h = image.check_file(image_path)
    if h.runtime != "cpython":
        raise BuildError("%s is a %s image; the QEMU board runs CPython" % (image_path, h.runtime))
    debs = fetch(cache)
    tree = unpack(cache, debs)
    kver, mods = module_order(tree)
    os.makedirs(out, exist_ok=True)
    staging = os.path.join(out, "staging")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    # the firmware: factory image and its payload, precompiled
    factory = os.path.join(staging, "factory")
    image.extract(image_path, factory)
    tag = __import__("binascii").hexlify(h.sha256[:6]).decode()
    with open(os.path.join(factory, ".complete"), "w") as f:
        f.write(tag + "\n")
    # the Python standard library, trimmed, precompiled once per package set
    stdlib = os.path.join(cache, "stdlib-" + os.path.basename(tree))
    if not os.path.exists(os.path.join(stdlib, ".complete")):
        shutil.rmtree(stdlib, ignore_errors=True)
        shutil.copytree(os.path.join(tree, "usr", "lib", "python3.11"), stdlib,
                        ignore=shutil.ignore_patterns(*STDLIB_SKIP))
        compile_pyc(stdlib)
        open(os.path.join(stdlib, ".complete"), "w").close()
    compile_pyc(factory)

    bar = Progress("qemu: initramfs", 6)
    cp = Cpio()
    for d in ("bin", "dev", "proc", "sys", "tmp", "root", "state", "mnt", "run", "modules"):
        cp.dir(d)
    with open(os.path.join(tree, "bin", "busybox"), "rb") as f:
        cp.file("bin/busybox", f.read(), 0o755)
    cp.file("init", INIT.encode(), 0o755)
    bar.step(1, "busybox")
    libdir = os.path.join(tree, "lib", "aarch64-linux-gnu")
    cp.add_tree(libdir, "lib/aarch64-linux-gnu")
    usrlib = os.path.join(tree, "usr", "lib", "aarch64-linux-gnu")
    if os.path.isdir(usrlib):
        cp.add_tree(usrlib, "usr/lib/aarch64-linux-gnu", skip=("gconv", "engines-3", "ossl-modules"))
    ld = os.path.join(tree, "lib", "ld-linux-aarch64.so.1")
    if os.path.islink(ld):
        cp.symlink("lib/ld-linux-aarch64.so.1", os.readlink(ld))
    else:
        with open(ld, "rb") as f:
            cp.file("lib/ld-linux-aarch64.so.1", f.read(), 0o755)
    bar.step(1, "libc")
    with open(os.path.join(tree, "usr", "bin", "python3.11"), "rb") as f:
        cp.file("usr/bin/python3.11", f.read(), 0o755)
    cp.add_tree(stdlib, "usr/lib/python3.11")
    bar.step(1, "python3.11")
    names = []
    for name, path in mods:
        with open(path, "rb") as f:
            cp.file("modules/%s.ko" % name, f.read())
        names.append(name)
    cp.file("modules/order", ("\n".join(names) + "\n").encode())
    bar.step(1, "modules")
    with open(image_path, "rb") as f:
        cp.file("firmware.img", f.read())
    cp.add_tree(factory, "factory")
    bar.step(1, "firmware")
    raw = cp.finish()
    initrd = os.path.join(out, "initramfs.gz")
    with open(initrd + ".tmp", "wb") as f:
        f.write(gzip.compress(raw, compresslevel=6, mtime=0))
    os.replace(initrd + ".tmp", initrd)
    bar.step(1, "gzip")
    bar.finish("%d KiB" % (os.path.getsize(initrd) // 1024))
    kernel = os.path.join(tree, "boot", "vmlinuz-" + kver)
    shutil.copyfile(kernel, os.path.join(out, "vmlinuz"))
    shutil.rmtree(staging, ignore_errors=True)
    with open(os.path.join(out, "manifest.txt"), "w") as f:
        f.write("kernel: %s (%d bytes)\n" % (kver, os.path.getsize(kernel)))
        f.write("initramfs: %d bytes (%d uncompressed)\n" % (os.path.getsize(initrd), len(raw)))
        f.write("firmware image: %s %s, %d bytes\n" % (h.version, h.runtime, os.path.getsize(image_path)))
        f.write("packages: %s\n" % ", ".join(sorted(os.path.basename(p) for p in debs.values())))
        f.write("modules: %s\n" % " ".join(names))
    return os.path.join(out, "vmlinuz"), initrd


def make_state_disk(path, size_mb=64):
    """An empty ext4 disk for the appliance's flash."""
    _need("mkfs.ext4", "e2fsprogs")
    with open(path + ".tmp", "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    r = subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "branch-flash", path + ".tmp"],
                       capture_output=True, text=True)
    if r.returncode:
        raise BuildError("mkfs.ext4 %s: %s" % (path, r.stderr.strip()))
    os.replace(path + ".tmp", path)


def command(out, state_disk, sip_port, serial="mon:stdio", board="sim", share=None,
            memory_mb=512):
    """The qemu-system-aarch64 command line for the boot files in out."""
    _need("qemu-system-aarch64", "qemu-system-arm")
    append = "console=ttyAMA0 quiet loglevel=1 panic=-1 bv.board=%s" % board
    cmd = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-smp", "2",
           "-m", str(memory_mb), "-nographic", "-no-reboot",
           "-kernel", os.path.join(out, "vmlinuz"), "-initrd", os.path.join(out, "initramfs.gz"),
           "-append", append,
           "-drive", "file=%s,format=raw,if=virtio,cache=writeback" % state_disk,
           "-netdev", "user,id=n0,hostfwd=udp:127.0.0.1:%d-10.0.2.15:5060" % sip_port,
           "-device", "virtio-net-pci,netdev=n0",
           "-serial", serial]
    if serial != "mon:stdio":
        cmd += ["-monitor", "none"]
    if share:
        cmd += ["-virtfs", "local,path=%s,mount_tag=hostshare,security_model=none,readonly=on" % share]
    return cmd


def main(argv):
    out = os.path.join(ROOT, "build", "qemu")
    img = os.path.join(ROOT, "build", "firmware-cpython.img")
    cache = None
    boot = fresh = fetch_only = False
    sip_port = 5060
    disk = None
    board = "sim"
    share = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        if a in ("--boot", "--fresh", "--fetch"):
            if a == "--boot":
                boot = True
            elif a == "--fetch":
                fetch_only = True
            else:
                fresh = True
            i += 1
            continue
        if a in ("--out", "--image", "--cache", "--sip-port", "--state-disk", "--board",
                 "--share") and i + 1 < len(argv):
            v = argv[i + 1]
            if a == "--share":
                if not os.path.isdir(v):
                    print("qemu_image: --share %s is not a directory" % v, file=sys.stderr)
                    return 2
                share = os.path.abspath(v)
            elif a == "--out":
                out = v
            elif a == "--image":
                img = v
            elif a == "--cache":
                cache = v
            elif a == "--state-disk":
                disk = v
            elif a == "--board":
                board = v
            else:
                try:
                    sip_port = int(v)
                except ValueError:
                    print("qemu_image: --sip-port takes a number, not %r" % v, file=sys.stderr)
                    return 2
            i += 2
            continue
        print("qemu_image: unknown argument %r (see --help)" % a, file=sys.stderr)
        return 2
    start = time.monotonic()
    if fetch_only:
        try:
            c = cache_dir(cache)
            os.makedirs(c, exist_ok=True)
            tree = unpack(c, fetch(c))
        except BuildError as e:
            print("qemu_image: %s" % e, file=sys.stderr)
            return 1
        print("qemu_image: arm64 packages ready in %s (%.1f s)" % (tree, time.monotonic() - start))
        return 0
    try:
        kernel, initrd = build(out, img, cache)
        print("qemu_image: %s and %s ready in %.1f s" % (kernel, initrd, time.monotonic() - start))
        if not boot:
            return 0
        disk = disk or os.path.join(out, "state.img")
        if fresh or not os.path.exists(disk):
            make_state_disk(disk)
        cmd = command(out, disk, sip_port, board=board, share=share)
    except BuildError as e:
        print("qemu_image: %s" % e, file=sys.stderr)
        return 1
    print("qemu: booting; SIP on 127.0.0.1:%d (UDP), flash %s; Ctrl-A X quits" % (sip_port, disk))
    sys.stdout.flush()
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
