"""TokenStore: 0600 from creation, atomic replace, generations, interrupted saves, the lock."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tracker.errors import StorageError
from tracker.logs import scrub
from tracker.mmt.tokens import TokenStore

PAIR = {"access_token": "acc-unit-0123456789", "refresh_token": "ref-unit-0123456789",
        "token_type": "Bearer", "expires_in": 3600}  # fmt: skip


def test_created_0600_in_a_0700_dir_whatever_the_umask(tmp_path: Path) -> None:
    store = TokenStore.in_dir(tmp_path / "new" / "data")
    old = os.umask(0)
    try:
        store.save(PAIR)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.path.parent).st_mode) == 0o700


def test_round_trip_generation_and_clock_fields(tmp_path: Path) -> None:
    store = TokenStore.in_dir(tmp_path)
    first = store.save(PAIR, received_at=None, expires_at=None)
    second = store.save({**PAIR, "access_token": "acc-unit-second-000"}, received_at=1.0e9,
                        expires_at=1.0e9 + 3600)  # fmt: skip
    assert (first["generation"], second["generation"]) == (1, 2)
    loaded = store.load_tokens()
    assert loaded == second
    assert loaded["expires_at"] == 1.0e9 + 3600
    assert store.load_tokens() is not None


def test_unknown_reply_fields_are_not_stored(tmp_path: Path) -> None:
    store = TokenStore.in_dir(tmp_path)
    store.save({**PAIR, "weird": {"nested": object.__name__}})
    assert "weird" not in json.loads(store.path.read_text())


def test_loaded_tokens_are_registered_as_secrets(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    record = {"version": 1, "generation": 1, "state": "logged_in",
              "access_token": "acc-never-seen-before-1", "refresh_token": "ref-never-seen-before-1"}
    path.write_text(json.dumps(record))
    assert TokenStore(path).load() is not None
    assert "acc-never-seen-before-1" not in scrub("x acc-never-seen-before-1 y")
    assert "ref-never-seen-before-1" not in scrub("ref-never-seen-before-1")


def test_a_complete_temp_file_with_a_newer_generation_is_promoted(tmp_path: Path) -> None:
    store = TokenStore.in_dir(tmp_path)
    store.save(PAIR)
    newer = {"version": 1, "generation": 2, "state": "logged_in", **PAIR,
             "access_token": "acc-from-tmp-00000"}  # fmt: skip
    store.tmp_path.write_text(json.dumps(newer))
    assert store.load_tokens()["access_token"] == "acc-from-tmp-00000"  # type: ignore[index]
    assert not store.tmp_path.exists()
    assert json.loads(store.path.read_text())["generation"] == 2


@pytest.mark.parametrize("tmp_content", ['{"version": 1, "gener', "", '{"version": 1}'])
def test_a_partial_temp_file_is_ignored_and_removed(tmp_path: Path, tmp_content: str) -> None:
    store = TokenStore.in_dir(tmp_path)
    store.save(PAIR)
    store.tmp_path.write_text(tmp_content)
    assert store.load_tokens()["access_token"] == PAIR["access_token"]  # type: ignore[index]
    assert not store.tmp_path.exists()


def test_an_older_temp_file_is_ignored(tmp_path: Path) -> None:
    store = TokenStore.in_dir(tmp_path)
    store.save(PAIR)
    store.save(PAIR)
    older = {"version": 1, "generation": 1, "state": "logged_in", **PAIR,
             "access_token": "acc-stale-000000"}  # fmt: skip
    store.tmp_path.write_text(json.dumps(older))
    assert store.load_tokens()["access_token"] == PAIR["access_token"]  # type: ignore[index]


def test_an_unpromoted_temp_file_is_used_but_left_alone_while_locked(tmp_path: Path) -> None:
    store = TokenStore.in_dir(tmp_path)
    store.save(PAIR)
    newer = {"version": 1, "generation": 5, "state": "logged_in", **PAIR,
             "access_token": "acc-locked-tmp-000"}  # fmt: skip
    store.tmp_path.write_text(json.dumps(newer))
    with store.locked():  # another writer is mid-save: readers must not rename under it
        assert store.load_tokens()["access_token"] == "acc-locked-tmp-000"  # type: ignore[index]
        assert store.tmp_path.exists()
        assert store.save(PAIR)["generation"] == 6  # a save continues after the newest


def test_a_damaged_file_is_a_clear_storage_error(tmp_path: Path) -> None:
    store = TokenStore.in_dir(tmp_path)
    store.path.write_text("{not json")
    with pytest.raises(StorageError, match="damaged; run `tracker login`"):
        store.load()


def test_a_failed_write_keeps_the_old_file_and_names_no_secret(tmp_path: Path) -> None:
    store = TokenStore.in_dir(tmp_path)
    store.save(PAIR)
    before = store.path.read_bytes()
    store.tmp_path.mkdir()  # the temp file cannot be created
    with pytest.raises(StorageError) as caught:
        store.save({**PAIR, "access_token": "acc-would-be-new-0000"})
    assert store.path.read_bytes() == before
    assert "acc-would-be-new-0000" not in str(caught.value)
    assert PAIR["refresh_token"] not in str(caught.value)


def test_login_needed_marker_and_delete(tmp_path: Path) -> None:
    store = TokenStore.in_dir(tmp_path)
    store.save(PAIR)
    store.mark_login_needed("the server refused the stored login (invalid_grant)")
    record = store.load()
    assert record is not None
    assert record["state"] == "login_needed"
    assert "refresh_token" not in record
    assert store.load_tokens() is None
    assert store.delete() is True
    assert store.delete() is False
    assert store.load() is None


def test_a_reply_without_access_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        TokenStore.in_dir(tmp_path).save({"refresh_token": "r"})


def test_the_lock_excludes_another_holder(tmp_path: Path) -> None:
    store = TokenStore.in_dir(tmp_path)
    fd = store.try_lock()
    assert fd is not None
    assert store.try_lock() is None
    store.unlock(fd)
    again = store.try_lock()
    assert again is not None
    store.unlock(again)


def test_no_data_dir_reads_as_logged_out_and_creates_nothing(tmp_path: Path) -> None:
    store = TokenStore.in_dir(tmp_path / "absent")
    assert store.load() is None
    assert not (tmp_path / "absent").exists()
