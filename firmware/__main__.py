"""python -m firmware --board sim --state DIR [...]: boot the appliance."""
import sys

from firmware import cli


def main(argv):
    try:
        opts = cli.parse(argv)
    except cli.UsageError as e:
        print("firmware: %s" % e)
        print(cli.USAGE)
        return 2
    if opts.help:
        print(cli.help_text())
        return 0
    from firmware.app import Appliance, BootError
    app = Appliance(opts)
    try:
        line = app.boot()
    except BootError as e:
        print("boot failed: %s" % e)
        return 1
    print(line)
    if opts.exit_after_boot:
        import gc
        gc.collect()
        try:
            print("heap after boot: %d bytes" % gc.mem_alloc())
        except AttributeError:
            pass
        app.close()
        return 0
    try:
        app.run()
    except KeyboardInterrupt:
        app.close()
    try:
        print("shut down: %s" % (app.stop_reason or "no tasks left"))
    except OSError:  # stdout already closed by the reader (a pipe into head, say)
        pass
    return 0


sys.exit(main(sys.argv[1:]))
