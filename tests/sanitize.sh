#!/usr/bin/env bash
# The kernel and share-engine tests on an AddressSanitizer + UBSan build of the extension.
#
#   bash tests/sanitize.sh [REPO_ROOT]     (default: the repository holding this script)
#
# Builds the package non-editable with MPSS_FAST_DEBUG=1 (setup.py: -O1 -g
# -fsanitize=address,undefined -fno-sanitize-recover=all) into a fresh venv, then runs the
# tests with libasan preloaded into the uninstrumented interpreter. Any ASan or UBSan
# report, in pytest or in a subprocess it starts, fails the run: the sanitizers abort the
# process and write their report under a log directory that must stay empty.
# Environment: PYTHON (default python3), SANITIZE_WORKDIR (default: a new temporary dir).
set -euo pipefail

repo="$(cd "${1:-$(dirname "$0")/..}" && pwd)"
python="${PYTHON:-python3}"
work="${SANITIZE_WORKDIR:-$(mktemp -d)}"
mkdir -p "$work"
start=$SECONDS

libasan="$(gcc -print-file-name=libasan.so)"
libubsan="$(gcc -print-file-name=libubsan.so)"
for lib in "$libasan" "$libubsan"; do
    [[ -f "$lib" ]] || { echo "sanitize.sh: $lib not found (install gcc with libasan/libubsan)" >&2; exit 2; }
done

# Build from a clean copy: no build/ directory whose up-to-date objects (made without the
# sanitizer flags) setuptools would reuse, and no in-place extension of an editable install.
src="$work/src"
rm -rf "$src" && mkdir -p "$src"
tar -C "$repo" -cf - --exclude=.git --exclude=build --exclude='*.so' --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude=.hypothesis --exclude='.venv*' --exclude=wheels . | tar -C "$src" -xf -

venv="$work/venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q pytest pytest-timeout hypothesis galois numpy cryptography
MPSS_FAST_DEBUG=1 "$venv/bin/python" -m pip install -q --no-cache-dir "$src"
echo "sanitize.sh: built and installed in $((SECONDS - start)) s"

so="$(find "$venv/lib" -path '*/site-packages/mpss_fast/_native*.so' | head -1)"
if [[ -z "$so" ]] || ! ldd "$so" | grep libasan >/dev/null; then
    echo "sanitize.sh: the installed extension ($so) is not linked against libasan" >&2
    exit 1
fi

logs="$work/sanitizer-logs"
rm -rf "$logs" && mkdir -p "$logs"
tests=(test_field.py test_sharing.py test_parity.py test_keystream.py test_otp.py test_bad_inputs.py
    test_threads.py test_selftest.py)
report="$work/pytest.txt"
set +e
(
    cd "$src"
    # PYTHONMALLOC=malloc: every object from malloc, with ASan redzones (pymalloc's arenas
    # have none). Leaks are not checked: CPython itself keeps memory reachable until exit
    # (tests/test_leaks.py covers our reference counting and valgrind our mallocs).
    LD_PRELOAD="$libasan $libubsan" \
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$logs/asan" \
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan" \
        PYTHONMALLOC=malloc MPSS_FAST_BACKEND=native MPSS_FAST_REQUIRE_NATIVE=1 PYTHONDONTWRITEBYTECODE=1 \
        "$venv/bin/python" -m pytest -q -p no:cacheprovider -o addopts="" "${tests[@]/#/tests/}"
) 2>&1 | tee "$report"
status=${PIPESTATUS[0]}
set -e

shopt -s nullglob
found=("$logs"/*)
if ((${#found[@]})); then
    echo "sanitize.sh: ${#found[@]} sanitizer report(s):" >&2
    cat "${found[@]}" >&2
    exit 1
fi
if ((status != 0)); then
    echo "sanitize.sh: pytest failed (exit $status)" >&2
    exit "$status"
fi
ran="$(grep -Eo '[0-9]+ passed' "$report" | tail -1 | grep -Eo '[0-9]+' || echo 0)"
if ((ran == 0)); then
    echo "sanitize.sh: no test ran" >&2
    exit 1
fi
echo "sanitize.sh: $ran tests passed under ASan+UBSan, 0 sanitizer reports, $((SECONDS - start)) s in all"
