"""The A/B software slots' console commands and the "running" report, as
the appliance registers them at boot: firmware/software.py and the image
reader are imported only when a command runs or when the flash has slots,
so an appliance that never upgrades does not carry them in its heap."""


def _show(app, args):
    from firmware import software
    return software.show(app, args)


def _add(app, args):
    from firmware import software
    return software.add(app, args)


def register_commands(reg):
    reg.register("show system software", _show, "Show the software slots: versions, active, trial")
    reg.register("request system software add", _add,
                 "Verify a firmware image and write it to the inactive slot: add IMAGE-FILE",
                 args=_add_args)


def _add_args(app, args, partial):
    return [("<image-file>", "Firmware image file (on the flash or a mounted share)")] \
        if not args else []


def running(app):
    """Called once the appliance has started its services (Appliance.start):
    a trial slot that got here becomes the active one."""
    import os
    try:
        if not os.listdir(app.state_dir + "/software"):
            return
    except OSError:
        return      # no slots: booted from a source tree or a copied payload
    from firmware import software
    software.running(app)
