"""The end-to-end confirmation proof: equal material verifies, anything else does not."""

from __future__ import annotations

import uuid

import pytest
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mpss_fast.exceptions import ParameterError
from mpss_fast.node.confirm import PROOF_BYTES, proof, verify

UNIT = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")
MATERIAL = bytes(range(64))


def test_the_proof_is_the_documented_hmac() -> None:
    """An independent computation of the formula in the module docstring."""
    key = HKDF(hashes.SHA256(), 32, salt=None, info=b"mpss confirm key" + UNIT.bytes).derive(MATERIAL)
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(b"mpss confirm v1" + UNIT.bytes + b"\x01A" + b"\x02D1")
    assert proof(MATERIAL, UNIT, "A", "D1") == mac.finalize()


def test_equal_material_verifies() -> None:
    claimed = proof(MATERIAL, UNIT, "A", "D")
    assert len(claimed) == PROOF_BYTES
    assert verify(bytearray(MATERIAL), UNIT, "A", "D", claimed)


@pytest.mark.parametrize(
    ("material", "unit", "source", "destination"),
    [
        (MATERIAL[:-1] + b"\x00", UNIT, "A", "D"),  # one byte differs
        (MATERIAL, uuid.UUID(int=UNIT.int ^ 1), "A", "D"),  # another unit
        (MATERIAL, UNIT, "B", "D"),  # another source
        (MATERIAL, UNIT, "A", "E"),  # another destination
        (MATERIAL, UNIT, "D", "A"),  # the ends swapped
    ],
)
def test_anything_else_does_not(material: bytes, unit: uuid.UUID, source: str, destination: str) -> None:
    assert not verify(material, unit, source, destination, proof(MATERIAL, UNIT, "A", "D"))


def test_names_cannot_run_into_each_other() -> None:
    """Length-prefixed names: ("AB", "C") and ("A", "BC") give different proofs."""
    assert proof(MATERIAL, UNIT, "AB", "C") != proof(MATERIAL, UNIT, "A", "BC")


def test_a_short_or_long_claim_is_refused() -> None:
    good = proof(MATERIAL, UNIT, "A", "D")
    assert not verify(MATERIAL, UNIT, "A", "D", good[:-1])
    assert not verify(MATERIAL, UNIT, "A", "D", good + b"\x00")


def test_node_names_are_checked() -> None:
    with pytest.raises(ParameterError):
        proof(MATERIAL, UNIT, "", "D")
    with pytest.raises(ParameterError):
        proof(MATERIAL, UNIT, "A", "x" * 256)
