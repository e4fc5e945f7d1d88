"""Host-side console client for the appliance, on pyserial.

    tools/console PORT                       interactive (raw passthrough; Ctrl-] quits)
    tools/console PORT --send FILE           scripted: send each line, wait for the
                                             prompt, print the transcript
Options:
    --baud N            serial speed (default 115200)
    --timeout S         seconds to wait for each prompt (default 10)
    --stop-on-error     exit 1 as soon as a line's output contains "error:"
    --login USER:PASS   answer login:/Password: if the console asks

PORT is anything serial.serial_for_url opens: /dev/ttyUSB0, a pty
(/dev/pts/N, e.g. the appliance's --console pty or QEMU `-serial pty`),
socket://HOST:PORT (QEMU `-serial tcp::4555,server,nowait`), rfc2217://...

In --send mode blank lines and lines starting with `#` are skipped; a line is
answered when the console shows a prompt (`user@host> `, `user@host# `) or
asks a question (password, yes/no).  Exit status: 0 done, 1 error seen with
--stop-on-error, 2 timeout or connection failure.
"""
import os
import re
import sys
import time

PROMPT = re.compile(rb"(\S+@\S+[>#] |login: |Password:|[Nn]ew password: |"
                    rb"\[yes,no\] \(\w+\) |---\(more\)---)$")
CMD_PROMPT = re.compile(rb"\S+@\S+[>#] $")
QUIET_S = 0.3   # after connecting: how long the console must be quiet before we start


class Timeout(Exception):
    pass


def read_until(port, rx, timeout):
    deadline = time.monotonic() + timeout
    out = b""
    while not rx.search(out):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout(out)
        port.timeout = min(left, 0.5)
        out += port.read(port.in_waiting or 1)
    return out


def drain(port, quiet=QUIET_S):
    """Read until the console has been quiet for `quiet` seconds."""
    out = b""
    port.timeout = quiet
    while True:
        data = port.read(4096)
        if not data:
            return out
        out += data


def connect(url, baud):
    import serial
    return serial.serial_for_url(url, baudrate=baud, timeout=0.5)


def sync(port, timeout, login=None):
    """Get to a command prompt: press Enter, log in if asked.  Returns the transcript."""
    port.write(b"\r")
    out = read_until(port, PROMPT, timeout)
    out += drain(port)
    if out.rstrip().endswith(b"login:"):
        if not login:
            raise Timeout(out + b"\n(the console asks for a login: use --login USER:PASS)")
        user, _, pw = login.partition(":")
        port.write(user.encode() + b"\r")
        out += read_until(port, re.compile(rb"Password:$"), timeout)
        port.write(pw.encode() + b"\r")
        out += read_until(port, re.compile(rb"(\S+@\S+[>#] |login: )$"), timeout + 12)
        if out.endswith(b"login: "):
            raise Timeout(out + b"\n(login refused)")
    return out


def send_script(port, lines, timeout, stop_on_error, out=sys.stdout):
    """Send lines one by one; returns the exit status."""
    status = 0
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        port.write(line.encode() + b"\r")
        try:
            got = read_until(port, PROMPT, timeout)
        except Timeout as e:
            out.write(e.args[0].decode(errors="replace").replace("\r\n", "\n"))
            out.write("\nconsole: no prompt within %ss after %r\n" % (timeout, line))
            return 2
        text = got.decode(errors="replace").replace("\r\n", "\n")
        out.write(text)
        out.flush()
        if "error:" in text and stop_on_error:
            out.write("\nconsole: stopped at the error above (--stop-on-error)\n")
            return 1
    out.write("\n")
    return status


def interactive(port):
    """Raw passthrough between this terminal and the port; Ctrl-] quits."""
    import select
    import termios
    import threading
    import tty
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd) if os.isatty(fd) else None
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                data = port.read(port.in_waiting or 1)
            except Exception:
                break
            if data:
                os.write(sys.stdout.fileno(), data)

    sys.stderr.write("--- connected to %s; Ctrl-] to quit ---\r\n" % port.name)
    t = threading.Thread(target=reader, daemon=True)
    port.timeout = 0.2
    t.start()
    try:
        if saved is not None:
            tty.setraw(fd)
        while True:
            r, _, _ = select.select([fd], [], [], 0.5)
            if not r:
                continue
            data = os.read(fd, 1024)
            if not data or b"\x1d" in data:
                break
            port.write(data)
    finally:
        stop.set()
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        sys.stderr.write("\r\n--- disconnected ---\n")
    return 0


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="tools/console", description=__doc__.split("\n")[0])
    ap.add_argument("port", help="device, pty, socket://HOST:PORT or another pyserial URL")
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--send", metavar="FILE", help="send the lines of FILE ('-' for stdin)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each prompt")
    ap.add_argument("--stop-on-error", action="store_true",
                    help="exit 1 when a line's output contains 'error:'")
    ap.add_argument("--login", metavar="USER:PASS", help="log in if the console asks")
    args = ap.parse_args(argv)
    try:
        port = connect(args.port, args.baud)
    except Exception as e:
        print("console: cannot open %s: %s" % (args.port, e), file=sys.stderr)
        return 2
    try:
        if not args.send:
            return interactive(port)
        if args.send == "-":
            lines = sys.stdin.read().split("\n")
        else:
            with open(args.send) as f:
                lines = f.read().split("\n")
        try:
            head = sync(port, args.timeout, args.login)
        except Timeout as e:
            sys.stdout.write(e.args[0].decode(errors="replace"))
            print("\nconsole: no prompt from %s within %ss" % (args.port, args.timeout))
            return 2
        lines_out = head.decode(errors="replace").replace("\r\n", "\n").split("\n")
        sys.stdout.write(lines_out[-1])     # the prompt the first line is typed at
        return send_script(port, lines, args.timeout, args.stop_on_error)
    finally:
        port.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
