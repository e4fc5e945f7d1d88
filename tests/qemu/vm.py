"""The appliance on arm64 under qemu-system-aarch64 -M virt, driven the way
a technician would: the emulated serial port (a pty QEMU opens) with
pyserial, SIP through the UDP port QEMU forwards from 127.0.0.1.

    vm = Vm(boot_dir, state_disk, sip_port)
    vm.start()                 # returns the seconds to the boot line (SIP bound)
    vm.command("show calls")   # a console line, its output before the next prompt
    vm.power_cut()             # SIGKILL: the disk keeps what reached QEMU

Every wait is a deadline on QEMU's serial output or its exit (bounded polls),
never a fixed sleep: QEMU is a real external process under software
emulation, so the deadlines are generous.
"""
import os
import re
import subprocess
import time

from tools import qemu_image

BOOT_RE = re.compile(rb"booted on board (\S+): SIP port (\d+), console (\S+)")
PROMPT_RE = re.compile(rb"\S+@\S+[>#] $")
PTY_RE = re.compile(rb"char device redirected to (/dev/pts/\d+)")


class Vm:
    def __init__(self, boot_dir, state_disk, sip_port, boot_timeout=240, share=None):
        self.boot_dir = boot_dir
        self.share = share
        self.state_disk = state_disk
        self.sip_port = sip_port
        self.boot_timeout = boot_timeout
        self.proc = None
        self.port = None
        self.log = b""

    def start(self):
        cmd = qemu_image.command(self.boot_dir, self.state_disk, self.sip_port, serial="pty",
                                 share=self.share)
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        line = b""
        deadline = self.t0 + 30
        while not PTY_RE.search(line):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError("QEMU did not open its serial pty: %r" % line)
            line += self.proc.stdout.readline()
        import serial
        self.port = serial.Serial(PTY_RE.search(line).group(1).decode(), 115200, timeout=1)
        self.read_until(BOOT_RE, self.boot_timeout)
        self.boot_s = time.monotonic() - self.t0
        return self.boot_s

    def read_until(self, pattern, timeout):
        """Serial output up to pattern (bytes regex); AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        start = len(self.log)
        while not pattern.search(self.log, start):
            if time.monotonic() > deadline:
                raise AssertionError("no %r within %ss; serial output:\n%s" % (
                    pattern.pattern, timeout, self.log[-3000:].decode(errors="replace")))
            if self.proc.poll() is not None:
                raise AssertionError("QEMU exited (%s); serial output:\n%s" % (
                    self.proc.returncode, self.log[-3000:].decode(errors="replace")))
            self.log += self.port.read(self.port.in_waiting or 1)
        return self.log[start:]

    def prompt(self, timeout=60):
        self.port.write(b"\r")
        return self.read_until(PROMPT_RE, timeout)

    def login(self, user, password, timeout=60):
        self.port.write(b"\r")
        self.read_until(re.compile(rb"login: $"), timeout)
        self.port.write(user.encode() + b"\r")
        self.read_until(re.compile(rb"Password:\s*$"), timeout)
        self.port.write(password.encode() + b"\r")
        return self.read_until(PROMPT_RE, timeout)

    def command(self, line, timeout=60):
        """Send a console line; its output before the next prompt."""
        mark = len(self.log)
        self.port.write(line.encode() + b"\r")
        deadline = time.monotonic() + timeout
        echo = line.encode()
        while True:
            tail = self.log[mark:]
            at = tail.find(echo)     # output starts after the echoed line
            if at >= 0:
                rest = tail[at + len(echo):]
                if b"\n" in rest and PROMPT_RE.search(rest.rsplit(b"\n", 1)[-1]):
                    break
            if time.monotonic() > deadline:
                raise AssertionError("no prompt after %r within %ss; got %r" % (line, timeout, tail[-2000:]))
            if self.proc.poll() is not None:
                raise AssertionError("QEMU exited during %r: %r" % (line, tail[-2000:]))
            self.log += self.port.read(self.port.in_waiting or 1)
        text = rest.decode(errors="replace").replace("\r\n", "\n")
        return "\n".join(text.split("\n")[1:-1])

    def power_cut(self):
        """Pull the plug: QEMU is killed, the guest gets no chance to flush."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.close()

    def close(self):
        if self.port is not None:
            self.port.close()
            self.port = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(30)
            self.proc.stdout.close()
            self.proc = None
