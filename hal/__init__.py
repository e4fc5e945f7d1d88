"""Hardware abstraction layer: bus interfaces, backends (linux, mpy, sim), drivers.

hal/ never imports firmware/.  See hal/builder.py for the one entry point that turns a
board description (boards/*.py) into driver objects.
"""
