"""The client's config and the emulator each keep the contract's activity types on purpose (the
emulator is an independent second party); this test holds both to the contract text itself."""

from __future__ import annotations

import re

import pytest

from tracker.config import ACTIVITY_TYPES as CLIENT_TYPES
from tracker.emulator.store import ACTIVITY_TYPES as EMULATOR_TYPES

from ..conftest import SHARED_DATA


def test_both_lists_match_the_contract() -> None:
    contract = SHARED_DATA.parent / "api" / "mmt-api-v3.md"
    if not contract.is_file():
        pytest.skip(f"the API contract is not at {contract}")
    row = next(
        line for line in contract.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `activity_type` |")
    )
    listed = re.split(r":\s*", row.split("|")[3], maxsplit=1)[1]
    documented = {name.strip() for name in listed.split(",")}
    assert "cycling" in documented
    assert set(CLIENT_TYPES) == documented
    assert set(EMULATOR_TYPES) == documented
