"""Build the native extension; everything else lives in pyproject.toml.

Set MPSS_FAST_PUREPYTHON=1 at build time for an extension-less install
(only the pure-Python backend is then available).
"""

import glob
import os

from setuptools import Extension, setup

ext_modules = []
if os.environ.get("MPSS_FAST_PUREPYTHON", "") not in ("1", "true", "yes"):
    from Cython.Build import cythonize

    # Baseline x86-64 only: no -march flags, so the wheel runs on every CPU of its platform;
    # the SIMD tiers carry per-function target attributes and are chosen at import.
    compile_args = ["-O3", "-std=c11", "-Wall", "-Wno-unused-function"]
    link_args: list[str] = []
    if os.environ.get("MPSS_FAST_DEBUG"):
        # The sanitizer build (tests/sanitize.sh): AddressSanitizer + UBSan, every report fatal.
        # The extension then needs libasan preloaded into the (uninstrumented) interpreter.
        sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
        compile_args = ["-O1", "-g", "-fno-omit-frame-pointer", *sanitize, "-std=c11", "-Wall"]
        link_args = sanitize
    FLOOR_C = "csrc/mpss_floor.c"
    ext = Extension(
        "mpss_fast._native",
        sources=["src/mpss_fast/_native.pyx", *sorted(set(glob.glob("csrc/*.c")) - {FLOOR_C})],
        include_dirs=["csrc"],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    # The floor loops of `mpss bench` (csrc/mpss_floor.c): their own small module, not the engine.
    floor = Extension(
        "mpss_fast._floor",
        sources=["src/mpss_fast/_floor.pyx", FLOOR_C, "csrc/mpss_aesctr.c"],
        include_dirs=["csrc"],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    ext_modules = cythonize(
        [ext, floor],
        compiler_directives={
            "language_level": 3,
            "embedsignature": True,
            "boundscheck": False,
            "wraparound": False,
            "initializedcheck": False,
            "cdivision": True,
        },
    )

setup(ext_modules=ext_modules)
