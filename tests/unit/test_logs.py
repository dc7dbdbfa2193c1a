"""Secrets never reach a log line, whichever way they are passed."""

from __future__ import annotations

import io
import json
import logging

import pytest

from tracker.logs import configure_logging, get_logger, register_secret, scrub

ACCESS = "acc-9f8e7d6c5b4a3210"
REFRESH = "ref-0123456789abcdef"


@pytest.mark.parametrize("as_json", [True, False])
def test_secrets_are_masked_everywhere(as_json: bool) -> None:
    stream = io.StringIO()
    configure_logging("debug", json=as_json, stream=stream)
    register_secret(REFRESH)
    log = get_logger("test")
    log.info("token refreshed", access_token=ACCESS, refresh_token=REFRESH)
    log.info("request", headers={"Authorization": f"Bearer {ACCESS}", "Accept": "*/*"})
    log.info(f"free text mentions {REFRESH} and Bearer {ACCESS}")
    log.info("callback", url="http://127.0.0.1:8765/cb?code=abcdef123&state=xyz")
    log.info("settings", api={"client_secret": "s3cr3t-value", "client_id": "public-id"})
    try:
        raise RuntimeError(f"server said no to {REFRESH}")
    except RuntimeError:
        log.exception("failed")
    logging.getLogger("aiohttp.client").warning("header Authorization: Bearer %s", ACCESS)
    text = stream.getvalue()
    for secret in (ACCESS, REFRESH, "abcdef123", "s3cr3t-value"):
        assert secret not in text
    assert "public-id" in text
    assert "state=xyz" in text
    if as_json:
        for line in text.splitlines():
            if line.startswith("{"):
                json.loads(line)


def test_scrub_free_text() -> None:
    assert scrub("Authorization: Basic dXNlcjpwYXNz") == "Authorization: Basic ***"
    assert "tok123" not in scrub("?access_token=tok123&x=1")


@pytest.mark.parametrize("as_json", [True, False])
def test_only_secret_keys_are_masked(as_json: bool) -> None:
    """Before: any key containing "token" was masked, secret or not (``token_ttl=***``)."""
    stream = io.StringIO()
    configure_logging("debug", json=as_json, stream=stream)
    log = get_logger("test")
    log.info("settings", token_ttl=3600, token_file="/data/tokens.json", refresh_count=2,
             tokens_seen=4, access_token="acc-not-shown-0001", client_secret="sec-not-shown-01",
             id_token="id-not-shown-00001", password="pw-not-shown-001",
             code="code-not-shown-1")  # fmt: skip
    text = stream.getvalue()
    for visible in ("3600", "/data/tokens.json", "tokens_seen"):
        assert visible in text
    for hidden in ("acc-not-shown", "sec-not-shown", "id-not-shown", "pw-not-shown",
                   "code-not-shown"):  # fmt: skip
        assert hidden not in text
