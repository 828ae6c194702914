"""The shared HTTP rules: which hosts may get plain http, and the retry loop."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest

from nanodistro.errors import FetchError
from nanodistro.util.http import (
    async_redirect_guard,
    backoff_delay,
    call_with_retries,
    check_plain_http,
    is_loopback,
    plain_http_allowed,
    redirect_guard,
)
from redirect_server import OUTSIDE, serve_redirects


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


# -------------------------------------------------------------------- redirects re-checked


@pytest.fixture
def redirector() -> Iterator[str]:
    """``/away`` -> a plain-http URL elsewhere, ``/near`` -> ``/ok`` on the same server."""
    with serve_redirects({"/away": OUTSIDE, "/near": "/ok"}, b"ok") as base:
        yield base


def test_redirect_to_plain_http_elsewhere_is_refused(redirector: str) -> None:
    with httpx.Client(
        follow_redirects=True, event_hooks={"response": [redirect_guard(insecure=False)]}
    ) as client:
        with pytest.raises(
            FetchError, match=re.escape("refusing redirect to http://example.invalid/x")
        ) as e:
            client.get(f"{redirector}/away")
        assert e.value.where == f"{redirector}/away"
        assert client.get(f"{redirector}/near").text == "ok"  # loopback hops still work


def test_async_redirect_guard_refuses_too(redirector: str) -> None:
    async def fetch(path: str) -> str:
        hooks = {"response": [async_redirect_guard(insecure=False)]}
        async with httpx.AsyncClient(follow_redirects=True, event_hooks=hooks) as client:
            return (await client.get(f"{redirector}{path}")).text

    with pytest.raises(FetchError, match=re.escape("example.invalid")):
        asyncio.run(fetch("/away"))
    assert asyncio.run(fetch("/near")) == "ok"


def test_check_plain_http_rule() -> None:
    check_plain_http("https://example.org/x", insecure=False)
    check_plain_http("http://127.0.0.1:5000/x", insecure=False)
    check_plain_http("http://example.org/x", insecure=True)
    with pytest.raises(FetchError, match="non-loopback"):
        check_plain_http("http://example.org/x", insecure=False)
