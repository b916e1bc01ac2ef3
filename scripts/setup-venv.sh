#!/usr/bin/env bash
# Creates the virtual environment with bpfunits (editable) and its test extras.
# bcc's Python bindings come only from Debian (python3-bpfcc); they are pure
# Python over libbcc, so the venv sees them through a link to that one package
# rather than through all of Debian's site-packages.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -e '.[test]'
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ -d /usr/lib/python3/dist-packages/bcc ]; then
  ln -sfn /usr/lib/python3/dist-packages/bcc "$site/bcc"
fi
