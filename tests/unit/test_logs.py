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
