#!/usr/bin/env bash
# Build and install the firmware on a target.
#   ./flash.sh sim [ARGS]     boot the appliance on this host with the simulated board
#                              (console on this terminal); ARGS go to `python -m firmware`
#   ./flash.sh build          compile every device module with mpy-cross into build/mpy/
#   ./flash.sh --help
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

usage() {
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
}

target="${1:-sim}"
[ $# -gt 0 ] && shift
case "$target" in
    -h|--help|help)
        usage
        exit 0 ;;
    sim)
        tools/ensure-env
        # Defaults first: a later --board or --state in ARGS overrides them.
        exec .venv/bin/python -m firmware --board sim --state "$here/state/sim" "$@" ;;
    build)
        tools/ensure-env
        exec .venv/bin/python tools/mpycheck.py --out build/mpy ;;
    *)
        echo "flash.sh: unknown target '$target' (targets: sim, build)" >&2
        usage >&2
        exit 2 ;;
esac
