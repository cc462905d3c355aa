"""Known-answer self-tests of every kernel tier, for a daemon to run at start-up.

:func:`selftest` runs fixed vectors through the pure backend and through every native
kernel tier this CPU runs (``mpss_fast.KERNELS``), and checks each in-kernel AES-256-CTR
keystream: split with injected coefficients and combine in both fields (0x11B, 0x11D),
XOR, re-encryption, a keyed split, the draft-mcgrew-tss test vector. A mismatch, or an
exception inside a check, fails that check. Messages and results name tiers and checks,
never data bytes. ``mpss selftest`` runs it from the command line.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _backend
from ._gf256 import POLY_AES, POLY_GFSHARE
from .engine import Engine
from .exceptions import SelfTestError

# -- inputs --------------------------------------------------------------------------------

LENGTH = 71
"""Bytes per vector: one 64-byte AVX-512 vector (2 AVX2, 4 SSE, 8 SWAR words) and a 7-byte tail."""


def _ramp(start: int, step: int) -> bytes:
    """``LENGTH`` bytes ``start, start + step, ...`` mod 256 (an odd step makes them distinct)."""
    return bytes((start + step * i) & 0xFF for i in range(LENGTH))


_SECRET = _ramp(0x00, 0x25)
_COEFFS = _ramp(0x11, 0x3B) + _ramp(0xE7, 0x95)  # rng(142): the x^1 row, then the x^2 row (k = 3)
_XS = bytes([0x01, 0x02, 0x53, 0xFF])
_COMBINE_XS = bytes([0x07, 0x1D, 0x80, 0xC3])
_COMBINE_YS = (_ramp(0x3C, 0x0B), _ramp(0x99, 0x47), _ramp(0x02, 0xD3), _ramp(0xF0, 0x1F))
_PADS = (_ramp(0x5A, 0x0D), _ramp(0xA5, 0x61), _ramp(0x33, 0xAB))
_KEY = bytes(range(32))
_KEYSTREAM_ROW, _KEYSTREAM_FIRST_BLOCK, _KEYSTREAM_BLOCKS = 5, 2**32 - 3, 39  # crosses a 32-bit carry

# draft-mcgrew-tss-03, section 9 (also in tests/test_sharing.py): AES field, k = n = 2.
_TSS_SECRET = bytes.fromhex("7465737400")
_TSS_SHARES = [bytes.fromhex("01B9FA07E185"), bytes.fromhex("02F5409B4511")]

# -- expected outputs ----------------------------------------------------------------------
# Computed once, outside this package, by a scratch script: galois.GF(2**8,
# irreducible_poly=0x11B / 0x11D) for the field arithmetic and cryptography's AES-256-CTR
# for the keystream; tests/test_selftest.py derives every one of them again the same way.
#
# _EVAL_*: the 4 shares' y bytes, concatenated in _XS order, of _SECRET + c1*x + c2*x^2
#   with c1, c2 the two rows of _COEFFS.
# _COMBINE_*: sum over i of w_i * _COMBINE_YS[i], w_i = prod_{m != i} x_m / (x_m + x_i)
#   over _COMBINE_XS (Lagrange at 0; the rows are arbitrary, not one polynomial's values).
# _XOR, _XOR3: _PADS[0] ^ _PADS[1] and _PADS[0] ^ _PADS[1] ^ _PADS[2].
# _KEYED_11B: like _EVAL_11B, but c1 and c2 are the first LENGTH bytes of AES-256-CTR
#   under _KEY from counter blocks BE64(0)||BE64(0) and BE64(1)||BE64(0) (design.md).
# _KEYSTREAM: AES-256-CTR under _KEY from counter block BE64(5)||BE64(2**32 - 3), 39 blocks
#   (vaes512: one 32-block batch, one 4-block step, a 3-block tail; aesni: 4 x 8 and 7).

_EVAL_11B = bytes.fromhex(
    "f615dc0b5251c8574e4d94438a89400fa645cc3bc2c1b8473e3dc433ba39f0bf"
    "5675bc6bb2b1a837aeadf423eae9a06f0625ac1ba22118a79e1da4139a99501f"
    "b6d59ccb12118893561b5e99a4b781eb951e9bac3aa482158b6baebf428adc00"
    "e5f83dd1a7d4f268f6cd48cfa9d7e1e6c3084d0c01690fc3060b8e32149c1116"
    "052e301c2a995265bb5b054252da9eb0f65d1186417bf427ff389e2fd2abd88c"
    "b74d8a71a9406d30a45e361a423b4424d1169de892a89aabb41f0a35fb6e5362"
    "64de64fd65698ae483b7b3736c282a0a9d38f4327b56f7dc2fb27f6515c45463"
    "99adc1dd49714703a62aee871a17623b9e0f9cd44061e504fe1c3d88f886fab2"
    "41bf36607d6085ee0be84069a70f30e3e37b61d66d23e76afce10af5"
)

_COMBINE_11B = bytes.fromhex(
    "12946dd5e42aadf69a0fad79789a7f195993f7118094d0d10f586754fa2cbd8c"
    "3076f30583319324b4ef3d17e6d608c79244b9d6fef3cb18862ddc3163e55f55"
    "4e48039551b171"
)

_EVAL_11D = bytes.fromhex(
    "f615dc0b5251c8574e4d94438a89400fa645cc3bc2c1b8473e3dc433ba39f0bf"
    "5675bc6bb2b1a837aeadf423eae9a06f0625ac1ba22118a79e1da4139a99501f"
    "b6d59ccb12118899501d549faeb18de195129ba03ca48813876da4b54486da0c"
    "e5f831d7abd4f864f0c74ec5a9d1ede6cf08410001630fc9000d84321e9c1d16"
    "052236102c935863b75d094254d6013718ffbe84c38cd162cf79145368e0f7d6"
    "dc84462d6714a160f7aff0f9931bb6320abc445dffb008988c6b112488d1748f"
    "e0f81fd7ddf47325e58f81590ae76fab3025e4eadf573d8bfc7a2f500f2abe16"
    "e1cc5c8efdff015137a3763a0232440f69e647c5b6632bd92e596e37686b9dc4"
    "b3daa8becdedc0361062555932a0125d999637c411222a3a2f295ac7"
)

_COMBINE_11D = bytes.fromhex(
    "c23e8424229fea3f14d5c35683735e3d5b82414db92ee2ecf326da7deb9f6bc7"
    "4799a75b2019b5e528d7fcc8a0b4dd5e7e7d23d1442c648ed1e2203848fd2ec6"
    "bac6c66418a712"
)

_XOR = bytes.fromhex(
    "ff611349a71143f96fc1b339c791e3499f21338967f183d92f81d3598771e389"
    "3f2193c967914339af41f379c711a3c91fe17309a7b10359ef01d35907b1a309"
    "7fe113c9a711c3"
)

_XOR3 = bytes.fromhex(
    "ccbf9a7d789b7619e4f752b5f0736e717caf0a6de8cb66491467426560e3de61"
    "ac1f7a5d587bd67944d7b29550534e515c0fea4d482b46a9744722c540433e41"
    "8c7f5a3d385b36"
)

_KEYED_11B = bytes.fromhex(
    "a3a89f3624986aae252179350d800b68e0edd0fe3c5f9cd2e108d25466287ec3"
    "9f723bacb0e8218c24162599fa9a30dfc9b5c2f753cb14103bec9350579534fb"
    "a6c90265644e06a06a33899e905757c7fa2f4eb69a1b11b0f686690ef1bf09d3"
    "fdf5bb14ef4223788a104781433ebc65f11507a20583e0ce3218380511d0b0b9"
    "3d0cd1c5ee06594a3afe0fde09c3d441450c466fd193b97b7c34966b921c3235"
    "6c356066b2c1049b945385dd8710bee038c0b65ce0452800d91b52249aa8af8f"
    "c9f8549c42b1dc70839919ad1f92c9e44354066a7910c5d1ddcc225ba680bf59"
    "d1b6f3a6949d8403dd49c9c1c3670783c67a67004b43deac27aa4c11a4845179"
    "67403f2c05b23c3fac9cbf23685df12c33d7513eadff66bea28c8e6c"
)

_KEYSTREAM = bytes.fromhex(
    "7d4021c55482a71a71d83554b186607e96a57857d5172ddc425363f4cb5c1aee"
    "4fc1ca8e91a916763f3991a2023abb2b24f06e6835feaa98651e5d2e11018afb"
    "2aa948ad3012cbf5b1d5dbed184f32f6f244863fcacbff9b5edb69c9820c720a"
    "3641bb8914d780c4fca440a237a8db2cabb53d7cad861c614a890d6129660dda"
    "eeb19456b799a5c9fd9a5dbc95b0e45aa07fc329e8757c54885f7cf89df38333"
    "d4758ea562b49a06412fd186c967c94d1677ccd088cacb4667dc314aab73abcd"
    "dfce073f00a7467746dc9c8c52b30bc40da881a960c82955140142a789c67d8b"
    "a89eae96643a9b464c3b503eafc5555b1796684ad115189874bc7f151b2c1696"
    "3cf4da3c1a661fbe4ef004b96ac72017573443d541c85ae7c5a966bc645549f2"
    "0403f9e81c80b61d7bc6eddeee6352212a6b8dc713ceaa2c868fd61d6ee7b54f"
    "3a73e34d3ea47acd1c7597a1408c536a28786d84fff17de0db6f4b49a9d55b3d"
    "6ef7c80bee89e66496779988b7d0609311e472572964f202f930b03354f75d8a"
    "b1e63f369f6db6863deacc1511e12e4235ffdaef56208fbc01c87bdc8ae21b53"
    "3d6dae2b0507856cc7814fd449df34c76f13cd01b16e5b0be750e990f3486851"
    "9a3bd59cf5b827152f04b4f1b13c0fc0c2dca0f615ae4706a59e7d1dcfecac40"
    "b0aa2f344730a56ea7d1c039faf6e5b48c1f7a36e36edf3a1fef0f96a82df8eb"
    "62875b3acd28e06d9e31433c8ebe6b5e62fb99169816e6f125a01784c29cb4da"
    "23576da5e5aaf10fbaa4fea7771615cb8f231916406fcd369db34d0ecf9cb493"
    "141082a73da96638ea07c152edd8f591f1771da9661a5bfc6db6729391cb25bf"
    "bb0c1dc0b3fc920cf0f712c2dbf6140b"
)

# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """One known-answer check on one tier: ``ok`` is False on a mismatch or an exception."""

    tier: str
    check: str
    ok: bool


@dataclass(frozen=True)
class SelfTestReport:
    """Every check run by :func:`selftest`, in order."""

    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(r.ok for r in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """The checks that failed."""
        return tuple(r for r in self.results if not r.ok)

    def tiers(self) -> dict[str, tuple[int, int]]:
        """(passed, total) per tier, in the order run."""
        counts: dict[str, tuple[int, int]] = {}
        for r in self.results:
            passed, total = counts.get(r.tier, (0, 0))
            counts[r.tier] = (passed + r.ok, total + 1)
        return counts

    def message(self) -> str:
        """One line: ``selftest failed: <tier>: <check>, ...; ...`` or a summary of the pass."""
        if self.ok:
            return f"selftest passed: {len(self.results)} checks on {len(self.tiers())} tiers"
        by_tier: dict[str, list[str]] = {}
        for r in self.failures:
            by_tier.setdefault(r.tier, []).append(r.check)
        return "selftest failed: " + "; ".join(f"{tier}: {', '.join(checks)}" for tier, checks in by_tier.items())


# -- checks -------------------------------------------------------------------------------

_Check = Callable[[], bool]


def _eval(engine: Engine, poly: int, expected: bytes) -> bool:
    shares = engine.split(_SECRET, 3, len(_XS), poly=poly, xs=_XS, rng=lambda nbytes: _COEFFS[:nbytes])
    return bytes(s[0] for s in shares) == _XS and b"".join(s[1:] for s in shares) == expected


def _combine(engine: Engine, poly: int, expected: bytes) -> bool:
    shares = [bytes([x]) + y for x, y in zip(_COMBINE_XS, _COMBINE_YS, strict=True)]
    return engine.combine(shares, poly=poly) == expected


def _keyed(kernels: Any) -> bool:
    outs = [bytearray(LENGTH) for _ in _XS]
    kernels.split_keyed(POLY_AES, memoryview(_SECRET), 2, _XS, [memoryview(o) for o in outs], _KEY)
    return b"".join(outs) == _KEYED_11B


def _tss_vector(engine: Engine) -> bool:
    coefficients = bytes(a ^ b for a, b in zip(_TSS_SHARES[0][1:], _TSS_SECRET, strict=True))  # y(1) = s + c
    split = engine.split(_TSS_SECRET, 2, 2, rng=lambda nbytes: coefficients[:nbytes])
    return split == _TSS_SHARES and engine.combine(_TSS_SHARES) == _TSS_SECRET


def _kernel_checks(kernels: Any) -> list[tuple[str, _Check]]:
    engine = Engine(_kernels=kernels)
    a, b, c = _PADS
    return [
        ("eval-0x11b", functools.partial(_eval, engine, POLY_AES, _EVAL_11B)),
        ("combine-0x11b", functools.partial(_combine, engine, POLY_AES, _COMBINE_11B)),
        ("eval-0x11d", functools.partial(_eval, engine, POLY_GFSHARE, _EVAL_11D)),
        ("combine-0x11d", functools.partial(_combine, engine, POLY_GFSHARE, _COMBINE_11D)),
        ("xor", lambda: engine.xor(a, b) == _XOR),
        ("reencrypt", lambda: engine.reencrypt(a, b, c) == _XOR3),
        ("keyed-split", functools.partial(_keyed, kernels)),
        ("tss-vector", functools.partial(_tss_vector, engine)),
    ]


def _kernel_targets() -> list[tuple[str, Callable[[], Any]]]:
    """(tier, loader) for the pure backend and every native tier this CPU runs."""
    targets: list[tuple[str, Callable[[], Any]]] = [("pure", functools.partial(_backend.load, "pure"))]
    targets += [(tier, functools.partial(_backend.load, "native", tier)) for tier in _backend.native_tiers()]
    return targets


def _keystream_targets() -> list[tuple[str, Callable[[bytes, int, int, int], bytes]]]:
    """(name, keystream(key, row, first_block, nblocks)) for each in-kernel AES-256-CTR this CPU runs."""
    if not _backend.native_tiers():
        return []
    native = _backend._import_native()
    names = [name for name in native.supported_keystreams() if name != native.LIBRARY_KEYSTREAM]
    return [(name, functools.partial(native.keystream, name)) for name in names]


def _keystream_matches(keystream: Callable[[bytes, int, int, int], bytes]) -> bool:
    return keystream(_KEY, _KEYSTREAM_ROW, _KEYSTREAM_FIRST_BLOCK, _KEYSTREAM_BLOCKS) == _KEYSTREAM


def _run(check: _Check) -> bool:
    try:
        return bool(check())
    except Exception:  # a kernel that raises on a known-good input is as broken as a wrong answer
        return False


def selftest(*, raise_on_failure: bool = True) -> SelfTestReport:
    """Run the known-answer tests of every kernel tier and in-kernel keystream this CPU runs.

    Returns the :class:`SelfTestReport`; on any failure raises :class:`SelfTestError`
    naming the tiers and checks, unless ``raise_on_failure=False``. Takes a few ms.
    """
    results: list[CheckResult] = []
    for tier, load in _kernel_targets():
        try:
            checks = _kernel_checks(load())
        except Exception:
            results.append(CheckResult(tier, "load", False))
            continue
        results += [CheckResult(tier, name, _run(check)) for name, check in checks]
    for name, keystream in _keystream_targets():
        check = functools.partial(_keystream_matches, keystream)
        results.append(CheckResult(f"keystream-{name}", "aes256-ctr", _run(check)))
    report = SelfTestReport(tuple(results))
    if raise_on_failure and not report.ok:
        failures = tuple((r.tier, r.check) for r in report.failures)
        raise SelfTestError(report.message(), failures)
    return report


__all__ = ["CheckResult", "SelfTestReport", "selftest"]
