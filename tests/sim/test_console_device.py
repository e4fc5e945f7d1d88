"""A console on a serial device follows `system console baud-rate` at once."""
import os
import termios
import tty

from tests.sim.appliance import simulated


def test_console_device_speed_follows_the_configuration(tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    app = simulated(tmp_path, args=["--console", path])
    try:
        assert app.console_stream.label == path
        assert termios.tcgetattr(app.console_stream.rfd)[4] == termios.B115200
        app.config.load_file("baud.conf", "set system console baud-rate 9600")
        assert termios.tcgetattr(app.console_stream.rfd)[4] == termios.B9600
        app.config.load_file("baud2.conf", "set system console baud-rate 57600")
        assert termios.tcgetattr(app.console_stream.rfd)[4] == termios.B57600
    finally:
        app.close()
        os.close(master)
        os.close(slave)
