#!/usr/bin/env bash
# Set up stylehost on a fresh Debian/Ubuntu machine: system packages (when root or sudo is
# available), a virtual environment in .venv, and the package with its test extras.
# Idempotent: a second run installs nothing new. Used by scripts/demo.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(fluidsynth fluid-soundfont-gm timgm6mb-soundfont jackd2 libportaudio2 libsndfile1
              xvfb libegl1 libgl1 libxkbcommon-x11-0 libxcb-cursor0 libfontconfig1 libdbus-1-3)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" = "none" ]; then
    echo "stylehost setup: please install these Debian packages first: ${missing[*]}" >&2
    exit 1
  fi
  echo "stylehost setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  # jackd2 asks about real-time priority; answer non-interactively.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.stylehost-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # torch>=2.3,<2.14 resolves to the small local CPU wheel where one lies on disk (see README).
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi
