"""domain.audit_query: the admin audit's ``olderThan`` durations and ``limit``, each bad one named."""

from __future__ import annotations

import re

import pytest

from relay_contracts.internal_api import DEFAULT_AUDIT_OLDER_THAN_S
from relay_ingest_api import domain
from relay_ingest_api.domain import AuditQuery, InvalidInputError
from relay_ingest_api.middleware import status_of


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("900", 900), ("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86_400), ("1h30m", 5400)],
)
def test_durations_are_whole_seconds_or_units_largest_first(text: str, seconds: int) -> None:
    assert domain.parse_duration(text) == seconds
    assert re.fullmatch(domain.DURATION_PATTERN, text), "the OpenAPI pattern accepts what the parser does"


def test_defaults_are_fifteen_minutes_and_a_hundred_rows() -> None:
    assert domain.audit_query({}) == AuditQuery(older_than_s=900, limit=100)
    assert domain.audit_query({"olderThan": "3650d", "limit": "1000"}) == AuditQuery(315_360_000, 1000)


@pytest.mark.parametrize(
    "value",
    ["-1", "1e309", "abc", "", "99999999999999999999d", "3651d", "1.5h", "m15", "30m1h", "15M", "\u0661\u0665", " 15m"],
)
def test_a_bad_older_than_is_a_400_naming_the_parameter(value: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        domain.audit_query({"olderThan": value})
    assert status_of(caught.value) == 400
    assert [p.pointer for p in caught.value.problems or []] == ["/olderThan"]


@pytest.mark.parametrize("value", ["0", "1001", "-5", "ten", "1e3", "", "00001000000"])
def test_a_bad_limit_is_named_too(value: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        domain.audit_query({"limit": value, "olderThan": "abc"})
    assert [p.pointer for p in caught.value.problems or []] == ["/olderThan", "/limit"]


def test_the_default_deadline_is_the_association_stores() -> None:
    assert domain.parse_duration(domain.DEFAULT_OLDER_THAN) == DEFAULT_AUDIT_OLDER_THAN_S
