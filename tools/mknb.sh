#!/usr/bin/env bash
# Turn a jupytext percent script into nbs/NAME.ipynb, run it in place (outputs kept), export and clean.
# usage: tools/mknb.sh path/to/NAME.py   (the script is an authoring aid; the notebook is the source of truth)
set -euo pipefail
src=$1; name=$(basename "$src" .py)
jupytext --quiet --to ipynb --output "nbs/$name.ipynb" "$src"
HF_HUB_OFFLINE=1 python tools/nbrun.py "nbs/$name.ipynb"
nbdev_export && nbdev_clean --fname "nbs/$name.ipynb"
