"""tshark helpers for interop tests: capture loopback traffic of one UDP port
to a pcap, then check that every message the appliance sent decodes as SIP
and that none is malformed or carries an expert error.

    cap = Capture(port, path)        # starts `tshark -i lo -f "udp port N" -w path`
    ...traffic...
    cap.stop()
    problems(path, port) -> [str]    # empty when clean
    count(path, filter) -> int

Needs Debian `tshark` (run as root here; CI installs it).  Waiting for the
capture to start reads tshark's "Capturing on" line with a deadline.
"""
import os
import select
import shutil
import signal
import subprocess
import time

# PI_ERROR in epan/proto.h; tshark 4.x also understands the name "error"
SEVERITY_ERROR = "0x00800000"


def require(binary, package):
    path = shutil.which(binary)
    assert path, "%s not found: install the Debian package %s" % (binary, package)
    return path


class Capture:
    def __init__(self, port, path, iface="lo", start_timeout_s=20, bpf=None):
        require("tshark", "tshark")
        self.path = path
        self.proc = subprocess.Popen(
            ["tshark", "-i", iface, "-f", bpf or "udp port %d" % port, "-w", path, "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err = b""
        deadline = time.monotonic() + start_timeout_s
        fd = self.proc.stderr.fileno()
        while b"Capturing on" not in err:
            left = deadline - time.monotonic()
            r = select.select([fd], [], [], max(0, left))[0] if left > 0 else []
            if not r:
                self.stop()
                raise AssertionError("tshark did not start capturing: %r" % err)
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError("tshark exited: %r" % err)
            err += chunk
        self.err = err

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _read(path, dfilter, fields=None):
    args = ["tshark", "-r", path, "-Y", dfilter]
    if fields:
        args += ["-T", "fields"]
        for f in fields:
            args += ["-e", f]
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise AssertionError("tshark -r %s -Y %r failed: %s" % (path, dfilter,
                                                               p.stderr.decode()[-500:]))
    return [ln for ln in p.stdout.decode("utf-8", "replace").splitlines() if ln.strip()]


def fields(path, dfilter, names):
    """One tuple of the named fields per packet matching dfilter."""
    return [tuple(ln.split("\t")) for ln in _read(path, dfilter, names)]


def count(path, dfilter):
    return len(_read(path, dfilter))


def problems(path, port):
    """Human-readable problems with what the appliance (udp source port
    `port`) sent; [] when every one of its packets is well-formed SIP."""
    out = []
    mine = "udp.srcport == %d" % port
    bad = _read(path, "%s && (_ws.malformed || _ws.expert.severity >= %s)" % (
        mine, SEVERITY_ERROR))
    if bad:
        out.append("malformed or expert errors: %s" % bad[:10])
    notsip = _read(path, "%s && !sip" % mine)
    if notsip:
        out.append("not decoded as SIP: %s" % notsip[:10])
    if not _read(path, "%s && sip" % mine):
        out.append("no SIP from the appliance was captured")
    return out
