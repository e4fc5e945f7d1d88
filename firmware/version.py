"""Product identity, shown by `show version` and in the boot line."""
PRODUCT = "branch-voice"
VERSION = "0.1.0"
