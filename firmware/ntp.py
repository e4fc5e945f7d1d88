"""The SNTP client's task (the I/O shell of firmware/sntp.py): one scheduler
task, one UDP socket, bounded retries; loaded once `system ntp server` is
configured.  Each answer sets app.time (firmware/timeofday.py).
"""


class NtpService:
    """The SNTP client's task: `configure(servers)` starts, restarts or stops it."""

    def __init__(self, app):
        self.app = app
        self.servers = []
        self.client = None
        self.task = None
        self.sock = None
        self.errors = 0

    def configure(self, servers):
        servers = [(h, p) for h, p in servers]
        if servers == self.servers and (self.task is not None or not servers):
            return
        self.stop()
        self.servers = servers
        if servers:
            from firmware.sntp import SntpClient
            self.client = SntpClient(servers, self.app.rng, now=self.app.clock.now())
            self.task = self.app.sched.spawn(self._run(self.client), "ntp")

    def stop(self):
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.task = None
        self.client = None
        self._close()

    def _close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def _open(self):
        import socket
        from firmware.sipstack.transport import sockaddr
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(sockaddr("0.0.0.0", 0))
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        self.sock = s

    async def _run(self, client):
        from firmware.sched import TimeoutError
        from firmware.sipstack.transport import sockaddr, peer
        app = self.app
        sched = app.sched
        log = app.log.write
        try:
            self._open()
            while client is self.client:
                now = app.clock.now()
                for act in client.poll(now):
                    if act[0] == "send":
                        try:
                            self.sock.sendto(act[2], sockaddr(act[1][0], act[1][1]))
                        except OSError as e:
                            self.errors += 1
                            log("warning", "ntp: cannot send to %s:%d: %s" % (act[1][0], act[1][1], e))
                    elif act[0] == "failed":
                        log("warning", "ntp: no answer from %s; next try in %d s" % (
                            ", ".join("%s:%d" % s for s in client.servers),
                            (client.next_ms - now) // 1000))
                wait = client.next_deadline() - app.clock.now()
                try:
                    await sched.readable(self.sock, max(0, wait))
                except TimeoutError:
                    continue
                for _ in range(8):      # bounded work per wake-up
                    try:
                        data, raw = self.sock.recvfrom(128)
                    except OSError:
                        break
                    r = client.receive(data, peer(raw), app.clock.now())
                    if r is None:
                        continue
                    if r[0] == "sync":
                        app.time.set(r[1], app.clock.now(), r[2], r[3])
                    elif r[0] == "kod":
                        log("warning", "ntp: %s:%d sent kiss-o'-death %s" % (r[1][0], r[1][1], r[2]))
                    else:
                        log("warning", "ntp: answer from %s:%d refused: %s" % (r[1][0], r[1][1], r[2]))
        finally:
            if client is self.client or self.client is None:
                self._close()

    def show(self):
        c = self.client
        if c is None:
            return "NTP: no server configured"
        return "NTP servers: %s (requests %d, answers used %d, refused %d, dropped %d)" % (
            ", ".join("%s:%d" % s for s in c.servers), c.sent, c.syncs, c.rejected, c.dropped)
