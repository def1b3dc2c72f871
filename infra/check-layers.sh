#!/usr/bin/env bash
# Fails when a module of shared/src imports a sibling that (transitively) imports it
# back; first proves on a small synthetic tree that such a cycle is caught.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python3 infra/check-layers.py --self-test
python3 infra/check-layers.py shared/src
