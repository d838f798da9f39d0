"""200 create + run + artifact iterations under 30 % injected faults, sync and async: exactly once each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crownest_local import LocalServer
from soak import FAULT_RATE, run_soak

CALLS = 200


@pytest.fixture(scope="module")
def faulty() -> Iterator[LocalServer]:
    with LocalServer(faults=FAULT_RATE, max_sandboxes=3 * CALLS) as server:
        yield server


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_soak_under_faults_loses_nothing_and_duplicates_nothing(faulty: LocalServer, mode: str) -> None:
    report = run_soak(faulty, CALLS, mode)
    print(report)
    assert (report.sandboxes, report.commands, report.artifacts) == (CALLS, CALLS, CALLS)
    assert set(report.faults) == {"fault:unavailable", "fault:rate_limited", "fault:drop_before", "fault:drop_after"}
    assert report.retries >= sum(report.faults.values()) * 0.5  # most faults hit the three operations
