#!/usr/bin/env bash
# config/nibble.toml must load, set only real options, show each option's true
# default, and document every option `nibble serve` has.
set -euo pipefail
nibble=$1
toml=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# 1. It loads, and every key in it is a real option (unknown keys are errors).
"$nibble" serve --config "$toml" --check-config | grep -v '^config=' > "$dir/with-file.toml"

# 2. The values it sets are the defaults: the options it results in equal the
#    options with no file at all.
"$nibble" serve --check-config | grep -v '^config=' > "$dir/defaults.toml"
if ! diff -u "$dir/defaults.toml" "$dir/with-file.toml"; then
  echo "config/nibble.toml sets a value that is not the option's default (diff above)"
  exit 1
fi

# 3. Every option of `nibble serve` is documented (set or commented out).
missing=0
for option in $("$nibble" serve --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
  key=${option#--}
  case "$key" in help|config|check-config|no-enable-prefix-caching) continue ;; esac
  if ! grep -qE "^#? ?${key} = " "$toml"; then
    echo "option --${key} is not documented in config/nibble.toml"
    missing=1
  fi
done
[ "$missing" -eq 0 ]

# 4. The check really rejects what is not an option.
printf 'max-num-seqz = 3\n' > "$dir/bad.toml"
if "$nibble" serve --config "$dir/bad.toml" --check-config > "$dir/bad.out" 2>&1; then
  echo "an unknown key was accepted"; exit 1
fi
grep -q "unknown option 'max-num-seqz'" "$dir/bad.out"
echo "config/nibble.toml: loads, defaults match, every option documented"
