"""Voice configuration shared by every service: stations, trunks, peers and
the dial plan (config.py, dialplan.py), and the one owner of who is in
control of calls (control.py).  The package init stays empty so the schema
loads without the services' code."""
