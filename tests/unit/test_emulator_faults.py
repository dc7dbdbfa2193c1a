"""Fault specs and the seeded dice."""

from __future__ import annotations

from collections import Counter

import pytest

from tracker.emulator.faults import (
    ERROR_STATUSES,
    Action,
    FaultDice,
    FaultError,
    FaultSettings,
    faults_from,
    parse_fault_spec,
)


def test_spec_from_the_issue_parses():
    settings = faults_from(
        "latency=0.2,error_rate=0.1,drop_rate=0.05,lost_reply_rate=0.1,token_ttl=30,seed=7")
    assert settings == FaultSettings(latency=0.2, error_rate=0.1, drop_rate=0.05,
                                     lost_reply_rate=0.1, token_ttl=30, seed=7)


def test_spec_and_mapping_are_validated_alike():
    assert parse_fault_spec(" down=true , ") == {"down": "true"}
    assert faults_from("down=true").down is True
    assert faults_from({"down": False, "token_ttl": None}).down is False
    for bad in ({"latency": True}, {"seed": 1.5}, {"down": 1}, {"token_ttl": 0},
                {"latency": "fast"}, {"lost_reply_rate": -0.1}):
        with pytest.raises(FaultError):
            faults_from(bad)


def test_merge_keeps_other_settings():
    merged = faults_from("latency=1").merged({"error_rate": 0.5})
    assert (merged.latency, merged.error_rate) == (1.0, 0.5)
    assert merged.merged({"token_ttl": "none"}).token_ttl is None


def test_no_faults_never_rolls_and_always_passes():
    dice = FaultDice(FaultSettings())
    assert {dice.roll() for _ in range(100)} == {(Action.PASS, 200)}


def test_rates_are_honoured_roughly_and_seeded_exactly():
    settings = faults_from("error_rate=0.25,drop_rate=0.25,lost_reply_rate=0.25,seed=1")
    first = [FaultDice(settings).roll() for _ in range(1)]
    dice_a, dice_b = FaultDice(settings), FaultDice(settings)
    rolls_a = [dice_a.roll() for _ in range(4000)]
    assert rolls_a == [dice_b.roll() for _ in range(4000)]
    assert rolls_a[0] == first[0]
    counts = Counter(action for action, _ in rolls_a)
    for action in Action:
        assert 800 < counts[action] < 1200, counts
    assert {status for action, status in rolls_a if action is Action.ERROR} == \
        set(ERROR_STATUSES)


def test_new_seed_restarts_the_sequence_same_seed_does_not():
    settings = faults_from("error_rate=0.5,seed=3")
    dice = FaultDice(settings)
    head = [dice.roll() for _ in range(10)]
    dice.update(settings.merged({"latency": 1}))  # same seed: the sequence goes on
    dice.update(settings.merged({"seed": 4}))
    dice.update(settings.merged({"seed": 3}))  # back to 3: restarted
    assert [dice.roll() for _ in range(10)] == head


def test_all_rates_one_means_error_always():
    dice = FaultDice(faults_from("error_rate=1"))
    assert all(dice.roll()[0] is Action.ERROR for _ in range(50))
