"""The KMP (k, n) policy: n - f >= k > t, smallest choice, and plan() over a topology."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

import mpss_fast
from mpss_fast import InputTypeError, ParameterError
from mpss_fast.exceptions import PolicyError
from mpss_fast.kmp import Plan, backbone, choose_k_n, disjoint_paths, metro, plan


@pytest.mark.parametrize(
    ("failures", "compromised", "available", "expected"),
    [
        (0, 0, 2, (2, 2)),
        (0, 1, 2, (2, 2)),
        (1, 0, 3, (2, 3)),
        (2, 1, 4, (2, 4)),
        (1, 2, 5, (3, 4)),
        (2, 2, 5, (3, 5)),
        (0, 4, 9, (5, 5)),
        (0, 254, 255, (255, 255)),
        (253, 0, 255, (2, 255)),
    ],
)
def test_choices(failures: int, compromised: int, available: int, expected: tuple[int, int]) -> None:
    assert choose_k_n(failures=failures, compromised=compromised, paths_available=available) == expected


def test_rule_holds_and_is_smallest() -> None:
    for f, t in itertools.product(range(12), range(12)):
        k, n = choose_k_n(failures=f, compromised=t, paths_available=255)
        assert n - f >= k > t and k >= 2
        # no smaller n works: any valid k' is >= max(2, t + 1), so n' >= k' + f >= n
        for n2 in range(2, n):
            assert not any(n2 - f >= k2 > t for k2 in range(2, n2 + 1))
        with pytest.raises(PolicyError):
            choose_k_n(failures=f, compromised=t, paths_available=n - 1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"failures": 2, "compromised": 1, "paths_available": 3},
            PolicyError,
            r"^tolerating 2 failed paths and 1 compromised relay needs k = 2 and n = 4 node-disjoint paths; "
            r"only 3 exist$",
        ),
        (
            {"failures": 1, "compromised": 0, "paths_available": 1},
            PolicyError,
            r"^tolerating 1 failed path and 0 compromised relays needs k = 2 and n = 3 .*; only 1 exists$",
        ),
        ({"failures": 0, "compromised": 0, "paths_available": 0}, PolicyError, "none exist"),
        ({"failures": 200, "compromised": 100, "paths_available": 1000}, PolicyError, "more than the 255 shares"),
        ({"failures": -1, "compromised": 0, "paths_available": 3}, ParameterError, "failures must be >= 0"),
        ({"failures": 0, "compromised": -2, "paths_available": 3}, ParameterError, "compromised must be >= 0"),
        ({"failures": 0, "compromised": 0, "paths_available": -1}, ParameterError, "paths_available"),
        ({"failures": 1.0, "compromised": 0, "paths_available": 3}, InputTypeError, "failures must be an int"),
        ({"failures": 0, "compromised": False, "paths_available": 3}, InputTypeError, "compromised"),
    ],
)
def test_refusals(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        choose_k_n(**kwargs)


def test_keyword_only() -> None:
    with pytest.raises(TypeError):
        choose_k_n(1, 1, 5)  # type: ignore[misc]


def test_plan_on_the_metro() -> None:
    topology = metro()
    result = plan(topology, "alice", "bob", failures=2, compromised=1)
    assert (result.k, result.n) == (2, 4) and len(result.paths) == 4
    relays = [set(path.relays) for path in result.paths]
    assert all(not a & b for a, b in itertools.combinations(relays, 2))
    assert isinstance(result.paths, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.k = 3  # type: ignore[misc]
    assert plan(topology, "alice", "bob", failures=2, compromised=2) == Plan(
        3, 5, tuple(disjoint_paths(topology, "alice", "bob", 5))
    )


def test_plan_names_the_endpoints() -> None:
    with pytest.raises(PolicyError, match=r"n = 6 node-disjoint paths; only 5 exist between 'alice' and 'bob'$"):
        plan(metro(), "alice", "bob", failures=4, compromised=1)
    with pytest.raises(PolicyError, match=r"only 2 exist between 'Ivybridge' and 'Yarrow'"):
        plan(backbone(), "Ivybridge", "Yarrow", failures=1, compromised=1)


def test_plan_counts_only_links_with_enough_key() -> None:
    topology = metro()
    topology.update_link("alice", "harbor", pool_bytes=100)
    topology.update_link("stadium", "bob", pool_bytes=100)
    assert plan(topology, "alice", "bob", failures=3, compromised=1).n == 5
    short = r"only 4 exist between 'alice' and 'bob' over links holding 101 bytes of key"
    with pytest.raises(PolicyError, match=short):
        plan(topology, "alice", "bob", failures=3, compromised=1, demand_bytes=101)
    result = plan(topology, "alice", "bob", failures=2, compromised=1, demand_bytes=101)
    assert result.n == 4 and all(path.min_pool_bytes >= 101 for path in result.paths)


def test_plan_then_split_and_rebuild_from_any_k() -> None:
    result = plan(metro(), "alice", "bob", failures=2, compromised=1)
    key = bytes(range(32))
    shares = mpss_fast.split(key, result.k, result.n)
    assert len(shares) == len(result.paths)
    for lost in itertools.combinations(range(result.n), 2):  # any f = 2 paths fail
        arrived = [share for i, share in enumerate(shares) if i not in lost]
        assert mpss_fast.combine(arrived) == key


def test_plan_argument_errors() -> None:
    with pytest.raises(ParameterError):
        plan(metro(), "alice", "bob", failures=-1, compromised=0)
    with pytest.raises(ParameterError, match="same node"):
        plan(metro(), "bob", "bob", failures=0, compromised=0)
    with pytest.raises(InputTypeError):
        plan("metro", "alice", "bob", failures=0, compromised=0)  # type: ignore[arg-type]
