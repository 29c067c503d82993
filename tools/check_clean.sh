#!/usr/bin/env bash
# What CI's first check sees: clone HEAD, run nbdev_export + nbdev_clean, show any file they change.
# With --fix, copy the regenerated files back into this checkout (e.g. _modidx.py when uncommitted notebooks
# of other work had been exported into it).
set -euo pipefail
top=$(git rev-parse --show-toplevel); tmp=$(mktemp -d)
git clone -q "$top" "$tmp/c"; cd "$tmp/c"
nbdev_export >/dev/null && nbdev_clean >/dev/null
changed=$(git status --porcelain --untracked-files=all)
if [ -z "$changed" ]; then echo "clean: nbdev_export and nbdev_clean change nothing"; rm -rf "$tmp"; exit 0; fi
echo "$changed"
if [ "${1:-}" = "--fix" ]; then
  echo "$changed" | awk '{print $2}' | while read -r f; do cp "$f" "$top/$f"; echo "copied $f"; done
fi
rm -rf "$tmp"; exit 1
