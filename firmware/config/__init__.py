"""Junos-style configuration: schema (declarations), tree (parse/render),
store (crash-safe flash files), engine (candidate, commit, rollback), and
the statement modules system and voice."""
