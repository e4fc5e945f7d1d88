"""The base of the FXS and FXO agents (firmware/gateway/fxs.py, fxo.py)."""


class PortAgent:
    """What the FXS and FXO agents share: the port, its driver, the agent's
    TU timer, its counters and its silence frame."""
    kind = "port"

    def __init__(self, gw, port, drv):
        self.gw = gw
        self.port = port
        self.drv = drv
        self.state = "idle"
        self._timer = None
        self.last_cid = None        # (number, name) of the last incoming call
        self.calls_in = 0
        self.calls_out = 0
        self._silence = bytearray(160)

    def now(self):
        return self.gw.app.clock.now()

    def log(self, msg):
        self.gw.app.log.info("%s %d: %s" % (self.kind, self.port, msg))

    def _cancel_timer(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _silence_frame(self):
        s = self._silence
        if s[0] != self.gw.silence:
            for i in range(160):
                s[i] = self.gw.silence
        return s
