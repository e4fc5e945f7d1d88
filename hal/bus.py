"""Bus interfaces: the duck-typed contracts every backend implements.

The classes here document the contract and give small default implementations
that backends may inherit.  Drivers receive objects that behave like these and
never import machine, spidev, smbus2, gpiozero or serial themselves.

SPI   one object per chip (chip select bound).  transfer(tx) -> rx is full
      duplex, same length.  A bus built with cs_per_byte=True raises the chip
      select after EVERY byte (the Si3210/Si3215 needs that); otherwise CS stays
      low for the whole transfer (Si3050: [control, reg, data] in one frame).
I2C   read_reg(addr, reg, n) -> bytes; write_reg(addr, reg, data).  A missing
      device raises OSError.
Pin   value() -> 0/1, value(v); irq(handler, trigger) registers an edge
      callback that the backend calls from poll() -- never from a thread.
UART  read(n) -> bytes or None (non-blocking), write(data) -> n,
      fileno() -> int or None (for select.poll where available).
PCM   G.711 frames of FRAME_BYTES bytes per channel per 20 ms.
      read_frame(chan) -> bytes|None (frame from the line), write_frame(chan,
      frame) (frame toward the line).  Per-channel queues are bounded.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

FRAME_BYTES = const(160)      # 20 ms of 8 kHz G.711
FRAME_MS = const(20)
PCM_QUEUE_FRAMES = const(16)  # per channel and direction; full -> drop oldest, count

IRQ_RISING = const(1)
IRQ_FALLING = const(2)


class SPI:
    """One SPI device (bus + chip select)."""
    cs_per_byte = False

    def transfer(self, tx):
        raise NotImplementedError

    def write_readinto(self, tx, rx):
        r = self.transfer(tx)
        for i in range(len(rx)):
            rx[i] = r[i]
        return rx

    def write(self, data):
        self.transfer(data)

    def readinto(self, buf, write=0):
        r = self.transfer(bytes([write]) * len(buf))
        for i in range(len(buf)):
            buf[i] = r[i]
        return buf


class I2C:
    def read_reg(self, addr, reg, n):
        raise NotImplementedError

    def write_reg(self, addr, reg, data):
        raise NotImplementedError


class Pin:
    """GPIO pin with polled edge callbacks."""

    def __init__(self):
        self._handler = None
        self._trigger = 0
        self._last = None

    def value(self, v=None):
        raise NotImplementedError

    def irq(self, handler=None, trigger=IRQ_RISING | IRQ_FALLING):
        self._handler = handler
        self._trigger = trigger
        self._last = None

    def poll(self):
        """Sample the pin and call the handler on a matching edge.  Returns 1 if called."""
        if self._handler is None:
            return 0
        v = self.value()
        last = self._last
        self._last = v
        if last is None or v == last:
            return 0
        if (v and self._trigger & IRQ_RISING) or (not v and self._trigger & IRQ_FALLING):
            self._handler(self)
            return 1
        return 0


class UART:
    def read(self, n=-1):
        raise NotImplementedError

    def write(self, data):
        raise NotImplementedError

    def fileno(self):
        return None


class Ring:
    """Bounded FIFO of frames: push on a full ring drops the oldest and counts it."""

    def __init__(self, size):
        self.size = size
        self.items = []
        self.dropped = 0

    def push(self, item):
        if len(self.items) >= self.size:
            self.items.pop(0)
            self.dropped += 1
        self.items.append(item)

    def pop(self):
        if self.items:
            return self.items.pop(0)
        return None

    def __len__(self):
        return len(self.items)


class PCM:
    """Bounded per-channel PCM queues; backends feed/drain the other side.

    rx[chan]: frames from the line, drained by read_frame().
    tx[chan]: frames toward the line, filled by write_frame(); a backend (or a
    sink registered with attach()) takes them.  Frames are copied into bytes, so
    a caller may reuse its buffer right after write_frame() returns.
    """

    def __init__(self, channels, queue_frames=PCM_QUEUE_FRAMES):
        self.channels = channels
        self.rx = [Ring(queue_frames) for _ in range(channels)]
        self.tx = [Ring(queue_frames) for _ in range(channels)]
        self._sinks = [None] * channels
        self.bad_frames = 0

    def attach(self, chan, sink):
        """sink(chan, frame) receives frames written toward the line immediately."""
        self._sinks[chan] = sink

    def read_frame(self, chan):
        return self.rx[chan].pop()

    def write_frame(self, chan, frame):
        if len(frame) != FRAME_BYTES:
            self.bad_frames += 1
            raise ValueError("PCM frame must be %d bytes" % FRAME_BYTES)
        sink = self._sinks[chan]
        if sink is not None:
            sink(chan, bytes(frame))
        else:
            self.tx[chan].push(bytes(frame))

    def inject(self, chan, frame):
        """Backend side: a frame arrived from the line."""
        self.rx[chan].push(bytes(frame))

    def take(self, chan):
        """Backend side: next frame toward the line or None."""
        return self.tx[chan].pop()
