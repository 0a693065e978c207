"""Download links: the signing key is required and strong, and a link verifies only as signed, for its purpose,
until it expires."""

from __future__ import annotations

import pytest
from itsdangerous import URLSafeSerializer
from pydantic import SecretStr, ValidationError

from relay_platform.links import LinkExpiredError, LinkInvalidError, LinkSettings, LinkSigner
from relay_platform.shared_secret import is_loopback_host, is_loopback_url, new_shared_secret, secret_problem

KEY = new_shared_secret()
SETTINGS = LinkSettings(signing_key=SecretStr(KEY), public_base_url="https://relay.example", ttl_s=60)
FILE = ("bundles/acme/orders/O1/i1/ACME-1/t.pdf", "t.pdf", "application/pdf")


def _token(signer: LinkSigner, now: float = 1_000_000.0) -> str:
    return signer.url_for(*FILE, now=now).rsplit("/", 1)[1]


def test_settings_without_a_key_refuse_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LINKS_SIGNING_KEY", raising=False)
    with pytest.raises(ValidationError) as caught:
        LinkSettings()
    assert [error["loc"] for error in caught.value.errors()] == [("LINKS_SIGNING_KEY",)]


@pytest.mark.parametrize(
    "key",
    [
        "dev-only-signing-key-change-me",  # the old default
        "change-me",
        "please-change-me-before-going-to-production",
        "x" * 64,
        "short-but-random-3f9a",
    ],
)
def test_placeholder_or_short_keys_are_refused_without_echoing_them(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    monkeypatch.setenv("LINKS_SIGNING_KEY", key)
    with pytest.raises(ValidationError) as caught:
        LinkSettings()
    [error] = caught.value.errors()
    assert error["loc"] == ("LINKS_SIGNING_KEY",)
    assert key not in str(caught.value)


def test_the_key_comes_from_its_variable_and_stays_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKS_SIGNING_KEY", KEY)
    settings = LinkSettings()
    assert settings.signing_key.get_secret_value() == KEY
    assert KEY not in repr(settings)


def test_a_link_verifies_until_it_expires() -> None:
    signer = LinkSigner(SETTINGS)
    token = _token(signer)
    assert signer.verify(token, now=1_000_000.0 + 60) == FILE
    with pytest.raises(LinkExpiredError):
        signer.verify(token, now=1_000_000.0 + 61)


def test_a_link_signed_with_another_key_is_invalid() -> None:
    other = LinkSigner(LinkSettings(signing_key=SecretStr(new_shared_secret())))
    with pytest.raises(LinkInvalidError):
        LinkSigner(SETTINGS).verify(_token(other), now=1_000_000.0)


def test_a_tampered_link_is_invalid() -> None:
    signer = LinkSigner(SETTINGS)
    payload, signature = _token(signer).rsplit(".", 1)
    other_tenant = URLSafeSerializer("unused").dump_payload(
        {"k": "bundles/globex/orders/O9/i1/G-1/t.pdf", "n": "t.pdf", "m": "application/pdf", "e": 2_000_000}
    )
    # The first character: the last one of unpadded base64 also carries padding bits, and flipping only those
    # would leave the same signature bytes (a valid link, and a test that fails for some keys).
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    for token in (f"{other_tenant.decode()}.{signature}", f"{payload}.{flipped}", payload, "", "a.b.c"):
        with pytest.raises(LinkInvalidError):
            signer.verify(token, now=1_000_000.0)


def test_the_key_signed_for_another_purpose_makes_no_link() -> None:
    elsewhere = URLSafeSerializer(KEY, salt="relay-another-purpose").dumps(
        {"k": FILE[0], "n": FILE[1], "m": FILE[2], "e": 2_000_000}
    )
    unsalted = URLSafeSerializer(KEY).dumps({"k": FILE[0], "n": FILE[1], "m": FILE[2], "e": 2_000_000})
    for token in (elsewhere, unsalted):
        with pytest.raises(LinkInvalidError):
            LinkSigner(SETTINGS).verify(token, now=1_000_000.0)


def test_generated_secrets_pass_the_check() -> None:
    assert all(secret_problem(new_shared_secret()) is None for _ in range(100))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        (None, False),
        ("192.168.1.10", False),
        ("association-store", False),
        ("localhost.evil.example", False),
    ],
)
def test_loopback_hosts(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_loopback_urls() -> None:
    assert is_loopback_url("http://127.0.0.1:8081")
    assert is_loopback_url("http://[::1]:8081/")
    assert not is_loopback_url("http://association-store:8081")
    assert not is_loopback_url("http://127.0.0.1.nip.io:8081")
