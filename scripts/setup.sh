#!/usr/bin/env bash
# Installs what the project needs on Debian 12 and skips what is already there:
#   1. QGIS 3.22 LTR and GDAL from Debian (needs root or sudo),
#   2. a venv at .venv from /usr/bin/python3 with --system-site-packages, so the
#      Debian QGIS and GDAL bindings stay importable,
#   3. the pinned Python packages (requirements.txt + constraints.txt),
#   4. onnxruntime 1.17 in .ort117/, used only by the test that proves exported
#      models load in old runtimes.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES="qgis python3-qgis qgis-providers python3-gdal python3-scipy python3-h5py gdal-bin python3-venv python3-pip xvfb xauth zip unzip"
missing=""
for package in $DEBIAN_PACKAGES; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
if [ -n "$missing" ]; then
    echo "setup: installing Debian packages:$missing"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv from /usr/bin/python3 (--system-site-packages)"
    /usr/bin/python3 -m venv --system-site-packages .venv
fi

stamp=".venv/.stamp-$(cat requirements.txt constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "setup: installing Python packages into .venv"
    .venv/bin/python -m pip install -q --upgrade "pip<26"
    .venv/bin/python -m pip install -q -r requirements.txt -c constraints.txt
    rm -f .venv/.stamp-*
    touch "$stamp"
fi

if [ ! -f .ort117/.stamp ]; then
    echo "setup: installing onnxruntime 1.17.3 into .ort117 (compatibility test only)"
    .venv/bin/python -m pip install -q --no-deps --target .ort117 "onnxruntime==1.17.3"
    touch .ort117/.stamp
fi
echo "setup: ready (.venv)"
