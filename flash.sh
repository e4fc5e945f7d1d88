#!/usr/bin/env bash
# Build and install the firmware on a target.
#   ./flash.sh sim [ARGS]       boot the appliance on this host with the simulated board
#                                (console on this terminal); ARGS go to `python -m firmware`
#   ./flash.sh image [OPTS]     build a firmware image (tools/mkimage: build/firmware-cpython.img)
#   ./flash.sh qemu [OPTS]      build the arm64 image and boot it under qemu-system-aarch64 -M virt
#   ./flash.sh rpi  --ssh USER@HOST | --device /dev/sdX [--board NAME] [--dry-run]
#                                install onto a Raspberry Pi as a systemd service
#   ./flash.sh mpy  --port /dev/ttyACM0 [--dry-run]
#                                copy the .mpy payload onto a MicroPython board with mpremote
#   ./flash.sh build            compile every device module with mpy-cross into build/mpy/
#   ./flash.sh TARGET --help    the target's own options
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
py="$here/.venv/bin/python"

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}

die() { echo "flash.sh: $*" >&2; exit 2; }

need() {   # need TOOL PACKAGE: a clear error naming the missing prerequisite
    command -v "$1" >/dev/null 2>&1 || die "$1 is missing: install the Debian package $2 (apt-get install $2; tools/apt-packages.txt lists it)"
}

dry=0
step_no=0
run() {    # run CMD...: one numbered step, shown; skipped with --dry-run
    step_no=$((step_no + 1))
    printf '[%d] %s\n' "$step_no" "$*"
    [ $dry = 1 ] || "$@"
}

build_image() {   # build_image RUNTIME OUT [mkimage options]
    local runtime="$1" out="$2"; shift 2
    run tools/mkimage --runtime "$runtime" -o "$out" "$@"
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
        exec "$py" -m firmware --board sim --state "$here/state/sim" "$@" ;;
    build)
        tools/ensure-env
        exec "$py" tools/mpycheck.py --out build/mpy ;;
    image)
        case "${1:-}" in -h|--help)
            echo "usage: ./flash.sh image [--runtime cpython|micropython] [--board NAME]... [--version V]"
            echo "                        [--key SECRET] [--config FILE] [--prompts DIR] [-o OUT]"
            echo "Builds a firmware image (default build/firmware-RUNTIME.img); all options go to"
            echo "tools/mkimage.  Inspect one with: tools/mkimage --inspect IMAGE [--board B] [--pubkey F]"
            echo "Make a signing key with: tools/mkimage --genkey build/keys/release.key"
            exit 0 ;;
        esac
        tools/ensure-env
        exec tools/mkimage "$@" ;;
    qemu)
        case "${1:-}" in -h|--help)
            echo "usage: ./flash.sh qemu [--sip-port N] [--state-disk FILE] [--fresh] [--board NAME] [--share DIR]"
            echo "Builds build/firmware-cpython.img and the arm64 boot files (Debian's linux-image-arm64,"
            echo "busybox-static, python3.11-minimal; downloaded once into ~/.cache/branch-voice), then"
            echo "boots them under qemu-system-aarch64 -M virt with the console on this terminal"
            echo "(Ctrl-A X quits QEMU) and the appliance's SIP port 5060 forwarded to 127.0.0.1:N"
            echo "(UDP, default 5060).  The flash (state directory and A/B slots) is an ext4 disk,"
            echo "build/qemu/state.img unless --state-disk; --fresh starts it empty.  --share DIR"
            echo "appears read-only as /mnt/host in the guest (request system software add /mnt/host/X.img)."
            echo "Needs: qemu-system-aarch64 (Debian qemu-system-arm), mkfs.ext4 (e2fsprogs),"
            echo "apt-get and dpkg-deb, and deb.debian.org reachable on the first run."
            exit 0 ;;
        esac
        need qemu-system-aarch64 qemu-system-arm
        need mkfs.ext4 e2fsprogs
        need apt-get apt
        need dpkg-deb dpkg
        tools/ensure-env
        tools/mkimage --runtime cpython -o build/firmware-cpython.img
        exec "$py" tools/qemu_image.py --boot "$@" ;;
    rpi)
        ssh_to="" device="" board="rpi_oak8x"
        while [ $# -gt 0 ]; do
            case "$1" in
                -h|--help)
                    echo "usage: ./flash.sh rpi --ssh USER@HOST | --device /dev/sdX [--board NAME] [--dry-run]"
                    echo "Installs the CPython firmware image onto a Raspberry Pi (Raspberry Pi OS, arm64"
                    echo "or armhf) as the systemd service branch-voice: the factory image and its"
                    echo "unpacked payload in /opt/branch-voice, the flash (configuration, A/B slots) in"
                    echo "/var/lib/branch-voice, the boot loader python -m firmware.software boot."
                    echo "  --ssh USER@HOST   over ssh (sudo on the Pi); installs python3 and the HAL's"
                    echo "                    Debian packages there with apt-get"
                    echo "  --device /dev/sdX onto the root partition (sdX2) of an SD card that already"
                    echo "                    holds Raspberry Pi OS, mounted under build/rpi/mnt"
                    echo "  --board NAME      board file (default rpi_oak8x; see boards/)"
                    echo "  --dry-run         print every step, do nothing"
                    exit 0 ;;
                --ssh) ssh_to="${2:?--ssh needs USER@HOST}"; shift 2 ;;
                --device) device="${2:?--device needs a block device}"; shift 2 ;;
                --board) board="${2:?--board needs a name}"; shift 2 ;;
                --dry-run) dry=1; shift ;;
                *) die "rpi: unknown option '$1' (see ./flash.sh rpi --help)" ;;
            esac
        done
        [ -n "$ssh_to" ] || [ -n "$device" ] || die "rpi: give --ssh USER@HOST or --device /dev/sdX"
        [ -n "$ssh_to" ] && [ -n "$device" ] && die "rpi: --ssh and --device exclude each other"
        [ -f "boards/$board.py" ] || die "rpi: unknown board '$board' (boards/: $(ls boards | sed -n 's/\.py$//p' | grep -v __init__ | tr '\n' ' '))"
        if [ -n "$device" ]; then
            part="${device}2"
            case "$device" in *[0-9]) part="${device}p2" ;; esac
            if [ $dry = 0 ]; then
                [ -b "$device" ] || die "rpi: $device is not a block device"
                [ -b "$part" ] || die "rpi: $part (the Raspberry Pi OS root partition) is missing"
                if grep -q "^$device" /proc/mounts; then die "rpi: $device is mounted; unmount it first"; fi
            fi
        fi
        if [ $dry = 0 ]; then
            tools/ensure-env
            if [ -n "$ssh_to" ]; then need ssh openssh-client; need scp openssh-client; fi
        fi
        img=build/firmware-cpython.img
        stage=build/rpi
        build_image cpython "$img" --board "$board"
        run rm -rf "$stage/factory"
        run "$py" -c "import sys; sys.path.insert(0, '.'); from firmware import image; image.extract('$img', '$stage/factory')"
        run "$py" -c "import binascii, sys; sys.path.insert(0, '.'); from firmware import image; h = image.check_file('$img'); open('$stage/factory/.complete', 'w').write(binascii.hexlify(h.sha256[:6]).decode() + '\n')"
        unit="[Unit]
Description=branch-voice appliance ($board)
After=network-online.target
[Service]
Environment=PYTHONPATH=/opt/branch-voice/factory
ExecStart=/usr/bin/python3 -m firmware.software boot --state /var/lib/branch-voice --board $board --factory /opt/branch-voice/firmware.img --unpacked /opt/branch-voice/factory --reboot-on-exit -- --console /dev/serial0 --sip-port 5060
Restart=always
[Install]
WantedBy=multi-user.target"
        run mkdir -p "$stage"
        if [ $dry = 1 ]; then echo "    (writes $stage/branch-voice.service:)"; echo "$unit" | sed 's/^/      /'; else printf '%s\n' "$unit" > "$stage/branch-voice.service"; fi
        if [ -n "$ssh_to" ]; then
            run ssh "$ssh_to" sudo apt-get install -y python3 python3-serial python3-spidev python3-smbus2 python3-gpiozero
            run ssh "$ssh_to" sudo mkdir -p /opt/branch-voice /var/lib/branch-voice
            run scp "$img" "$stage/branch-voice.service" "$ssh_to:/tmp/"
            run sh -c "tar -C '$stage' -cf - factory | ssh '$ssh_to' sudo tar -C /opt/branch-voice -xf -"
            run ssh "$ssh_to" sudo install -m 0644 /tmp/firmware-cpython.img /opt/branch-voice/firmware.img
            run ssh "$ssh_to" sudo install -m 0644 /tmp/branch-voice.service /etc/systemd/system/branch-voice.service
            run ssh "$ssh_to" sudo systemctl daemon-reload
            run ssh "$ssh_to" sudo systemctl enable --now branch-voice
            run ssh "$ssh_to" systemctl --no-pager status branch-voice
        else
            mnt="$stage/mnt"
            run mkdir -p "$mnt"
            run mount "$part" "$mnt"
            run test -f "$mnt/etc/os-release"
            run mkdir -p "$mnt/opt/branch-voice" "$mnt/var/lib/branch-voice"
            run cp -r "$stage/factory" "$mnt/opt/branch-voice/"
            run install -m 0644 "$img" "$mnt/opt/branch-voice/firmware.img"
            run install -m 0644 "$stage/branch-voice.service" "$mnt/etc/systemd/system/branch-voice.service"
            run ln -sf /etc/systemd/system/branch-voice.service "$mnt/etc/systemd/system/multi-user.target.wants/branch-voice.service"
            run sync
            run umount "$mnt"
            echo "On first boot install the HAL's packages: apt-get install python3-serial python3-spidev python3-smbus2 python3-gpiozero"
        fi
        [ $dry = 1 ] && echo "dry run: nothing was done"
        exit 0 ;;
    mpy)
        port="" board="sim" reset=1
        while [ $# -gt 0 ]; do
            case "$1" in
                -h|--help)
                    echo "usage: ./flash.sh mpy --port /dev/ttyACM0 [--board NAME] [--no-reset] [--dry-run]"
                    echo "Builds the MicroPython image (device modules compiled with mpy-cross), unpacks"
                    echo "its .mpy payload into build/mpy-payload and copies it onto the board with"
                    echo "mpremote (PyPI, in .venv), with a main.py that boots the appliance."
                    echo "  --port DEVICE  the board's serial port"
                    echo "  --board NAME   the board file main.py boots with (default sim; see boards/)"
                    echo "  --no-reset     leave the board running afterwards (no machine.reset(); the"
                    echo "                 MicroPython unix port, which the tests use as the board, has none)"
                    echo "  --dry-run      print every step, do nothing"
                    exit 0 ;;
                --port) port="${2:?--port needs a device}"; shift 2 ;;
                --board) board="${2:?--board needs a name}"; shift 2 ;;
                --no-reset) reset=0; shift ;;
                --dry-run) dry=1; shift ;;
                *) die "mpy: unknown option '$1' (see ./flash.sh mpy --help)" ;;
            esac
        done
        [ -n "$port" ] || die "mpy: give --port DEVICE (the board's serial port, e.g. /dev/ttyACM0)"
        [ -f "boards/$board.py" ] || die "mpy: unknown board '$board'"
        mpremote="$here/.venv/bin/mpremote"
        if [ $dry = 0 ]; then
            tools/ensure-env
            [ -x "$mpremote" ] || die "mpremote is missing from .venv: run tools/ensure-env (tools/requirements.txt lists it)"
            [ -e "$port" ] || die "mpy: no such port $port (is the board plugged in?)"
        fi
        img=build/firmware-micropython.img
        stage=build/mpy-payload
        build_image micropython "$img"
        run rm -rf "$stage"
        run "$py" -c "import sys; sys.path.insert(0, '.'); from firmware import image; image.extract('$img', '$stage')"
        main='import sys
sys.argv = ["firmware", "--state", "/state", "--board", "'"$board"'", "--console", "stdio"]
import firmware.__main__'
        if [ $dry = 1 ]; then echo "    (writes $stage/main.py:)"; echo "$main" | sed 's/^/      /'; else printf '%s\n' "$main" > "$stage/main.py"; fi
        # "resume": no soft reset on connecting, so the copy works on any REPL;
        # ":." (not ":"): mpremote 1.29 mis-copies directories to ":" on the unix port
        for top in firmware sip hal boards; do
            run "$mpremote" connect "$port" resume fs cp -r "$stage/$top" :.
        done
        run "$mpremote" connect "$port" resume fs cp "$stage/default.conf" "$stage/main.py" :.
        if [ $reset = 1 ]; then run "$mpremote" connect "$port" reset; fi
        [ $dry = 1 ] && echo "dry run: nothing was done"
        exit 0 ;;
    *)
        echo "flash.sh: unknown target '$target' (targets: sim, image, qemu, rpi, mpy, build)" >&2
        usage >&2
        exit 2 ;;
esac
