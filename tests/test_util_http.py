"""The shared HTTP rules: which hosts may get plain http, and the retry loop."""

from __future__ import annotations

import pytest

from nanodistro.util.http import backoff_delay, call_with_retries, is_loopback, plain_http_allowed


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("example.org", False),
        ("localhost.example.org", False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected
    assert plain_http_allowed(host, insecure=False) is expected
    assert plain_http_allowed(host, insecure=True) is True


def test_retries_until_success_with_doubling_delays() -> None:
    calls: list[int] = []
    delays: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "ok"

    result = call_with_retries(
        flaky, attempts=4, backoff=0.5, retry_on=ConnectionError, sleep=delays.append
    )
    assert result == "ok"
    assert delays == [0.5, 1.0]
    assert [backoff_delay(n, 1.0) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]


def test_last_error_raised_and_others_not_retried() -> None:
    delays: list[float] = []

    def down() -> None:
        raise ConnectionError("still down")

    with pytest.raises(ConnectionError, match="still down"):
        call_with_retries(
            down, attempts=3, backoff=1.0, retry_on=ConnectionError, sleep=delays.append
        )
    assert delays == [1.0, 2.0]

    def broken() -> None:
        raise ValueError("not retried")

    with pytest.raises(ValueError):
        call_with_retries(
            broken, attempts=3, backoff=1.0, retry_on=ConnectionError, sleep=delays.append
        )
    assert delays == [1.0, 2.0]
