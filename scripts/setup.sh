#!/usr/bin/env bash
# Idempotent set-up for a Debian 12 host, run as root: Debian packages, kernel-header links,
# tracefs, and a .venv made from /usr/bin/python3 (the only interpreter that can import bcc).
# A second run on a ready machine only checks and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

say() { printf 'setup: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  say "must run as root (sandboxes, cgroups and eBPF need it): sudo $0"
  exit 1
fi

# Debian packages. python3-bpfcc is bcc for /usr/bin/python3; linux-headers-amd64 gives bcc
# headers when the running kernel has none of its own.
debs=(python3-bpfcc python3-seccomp python3-prctl python3-cap-ng python3-venv bubblewrap runsc
      tmux linux-headers-amd64 bpftrace strace iproute2 sqlite3 make)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Kernel headers: bcc looks in /lib/modules/$(uname -r)/{build,source}. Debian splits headers in
# an -amd64 and a -common directory; BCC_KERNEL_SOURCE alone cannot express that, symlinks can.
kdir=/lib/modules/$(uname -r)
if [ ! -e "$kdir/build/include" ]; then
  hdr=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$hdr" ]; then
    say "no kernel headers under /usr/src: apt-get install linux-headers-amd64"
    exit 1
  fi
  common=${hdr%-amd64}-common
  mkdir -p "$kdir"
  ln -sfn "$hdr" "$kdir/build"
  ln -sfn "$common" "$kdir/source"
  say "linked $kdir/build -> $hdr"
fi

# tracefs is not mounted at boot on our machines.
if [ ! -e /sys/kernel/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || say "could not mount tracefs (probes will be off)"
fi

# The venv: system site packages so that bcc, seccomp and prctl from Debian are visible.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import bcc, seccomp' 2>/dev/null; then
  rm -rf .venv
  /usr/bin/python3 -m venv --system-site-packages .venv
  say "created .venv from /usr/bin/python3"
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -e "$stamp" ] || [ ! -x .venv/bin/workbench ]; then
  say "installing workbench into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# The sandbox's processes run as an unprivileged host uid and import from this checkout's .venv,
# and the tests run the tools as `nobody` too: a checkout others cannot read fails there (a clone
# into `mktemp -d` is 0700; a umask of 077 makes files 0600). Open it to reading, and the
# directories above it to traversal only.
if [ -n "$(find "$root" -path "$root/.git" -prune -o ! -perm -o=r -print -quit)" ]; then
  chmod -R o+rX "$root"
  say "made $root readable by others (the sandbox's unprivileged uid runs code from it)"
fi
dir=$(dirname "$root")
while [ "$dir" != / ]; do
  if [ -z "$(find "$dir" -maxdepth 0 -perm -o=x)" ]; then
    chmod o+x "$dir"
    say "made $dir traversable by others (not listable), for the same reason"
  fi
  dir=$(dirname "$dir")
done
