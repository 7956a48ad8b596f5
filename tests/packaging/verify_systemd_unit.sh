#!/usr/bin/env bash
# config/nibble.service must pass `systemd-analyze verify` with no complaint at all
# (verify exits 0 on unknown values and only prints them, so any output fails).
# ExecStart points at the installed path; verify checks it exists, so the unit is
# checked with the built binary in its place and nothing else changed.
set -euo pipefail
unit=$1
binary=$2
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed: skipping"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s#/usr/local/bin/nibble#${binary}#" "$unit" > "$dir/nibble.service"
grep -q "^ExecStart=${binary} serve" "$dir/nibble.service"
out=$(systemd-analyze verify "$dir/nibble.service" 2>&1) || { echo "$out"; exit 1; }
if [ -n "$out" ]; then echo "$out"; exit 1; fi
for key in "Type=notify" "Restart=on-failure" "User=nibble" "EnvironmentFile=" "ProtectSystem=strict" \
           "NoNewPrivileges=yes" "PrivateTmp=yes"; do
  grep -q "^${key}" "$unit" || { echo "nibble.service lacks ${key}"; exit 1; }
done
echo "systemd-analyze verify: clean"
