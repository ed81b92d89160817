#!/usr/bin/env bash
# Set up (if needed) and restyle the bundled demo clip with the shipped default model.
# Usage: bash scripts/demo.sh [STYLE]   (default: violin; writes out/demo_STYLE.wav)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
style=${1:-violin}
mkdir -p out
.venv/bin/stylehost render demo/plucked_melody.flac "out/demo_${style}.wav" --style "$style"
