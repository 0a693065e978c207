"""The scrubber redacts known secrets in every form they come back in, and credentials by their shape."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from relay_delivery import Deliverer, Scrubber
from relay_delivery.testing import deliver_bundle
from relay_platform.errors import PermanentError, TransientError
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.tenants import AzureBlobIntegration, TenantsConfig, ZapierIntegration

HOOK = "https://hooks.zapier.com/hooks/catch/1234567/abCDef9/"
ACCOUNT_KEY = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4+/0123456789=="
CONNECTION_STRING = (
    f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net"
)


@pytest.mark.parametrize(
    "text",
    [
        f"POST {HOOK} answered 410",
        "POST https://HOOKS.Zapier.COM/hooks/catch/1234567/abCDef9 answered 410",
        "POST HTTPS://hooks.zapier.com/hooks/catch/1234567/abCDef9/ answered 410",
        f"redirect to {quote(HOOK, safe='')}",
        "POST https://hooks.zapier.com/hooks/catch/1234567/abCDef9%2F answered 410",
        "path /hooks/catch/1234567/abCDef9 not found",
        "path /HOOKS/CATCH/1234567/ABCDEF9/ not found",
    ],
)
def test_a_hook_url_is_redacted_in_any_form(text: str) -> None:
    scrubbed = Scrubber([HOOK])(text)

    assert "1234567" not in scrubbed
    assert "abcdef9" not in scrubbed.lower()
    assert "***" in scrubbed


def test_the_path_of_any_hook_url_is_redacted_alone() -> None:
    scrub = Scrubber(["https://automations.example.com/flows/run/8f2k3j4h5"])

    assert scrub("404 for /flows/run/8f2k3j4h5/ at AUTOMATIONS.example.com") == "404 for *** at AUTOMATIONS.example.com"
    assert scrub("404 for %2Fflows%2Frun%2F8f2k3j4h5") == "404 for ***"


def test_a_short_hook_path_is_not_taken_for_a_secret() -> None:
    scrub = Scrubber(["https://example.com/hook"])

    assert scrub("GET /hook answered 200; see https://example.com/hook") == "GET /hook answered 200; see ***"


def test_a_connection_string_is_redacted_whole_and_by_its_key() -> None:
    scrub = Scrubber([CONNECTION_STRING])

    assert scrub(f"cannot parse {CONNECTION_STRING}!") == "cannot parse ***!"
    assert scrub(f"key {ACCOUNT_KEY} rejected") == "key *** rejected"
    assert scrub(f"key {quote(ACCOUNT_KEY, safe='')} rejected") == "key *** rejected"
    # Other parts are no secrets.
    assert scrub("https://acct.blob.core.windows.net/c") == "https://acct.blob.core.windows.net/c"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "403 for https://acct.blob.core.windows.net/c/a.pdf?sv=2022-11-02&sp=cw&sig=h5%2Bq%3D",
            "403 for https://acct.blob.core.windows.net/c/a.pdf?sv=2022-11-02&sp=cw&sig=***",
        ),
        ("bad AccountKey=c29tZWtleQ==;EndpointSuffix=x", "bad AccountKey=***;EndpointSuffix=x"),
        ("SharedAccessSignature=sv=2022&sig=abc;BlobEndpoint=x", "SharedAccessSignature=***;BlobEndpoint=x"),
        ("connect sftp://ops:hunter2@sftp.example.com", "connect sftp://ops:***@sftp.example.com"),
        ("sent Authorization: Bearer rr-K3y-123", "sent Authorization: Bearer ***"),
        ("GET /x?X-Amz-Signature=0af1&X-Amz-Credential=AKIA%2F1", "GET /x?X-Amz-Signature=***&X-Amz-Credential=***"),
        (
            "POST https://hooks.zapier.com/hooks/catch/9/zz answered 410",
            "POST https://hooks.zapier.com/hooks/catch/*** answered 410",
        ),
    ],
)
def test_credentials_nobody_configured_are_redacted_by_their_shape(text: str, expected: str) -> None:
    assert Scrubber()(text) == expected


def test_known_values_also_in_url_encoded_form_and_from_added_secrets() -> None:
    scrub = Scrubber(["pw S3cr3t!"]).with_secrets(["second-secret"]).with_secrets([None, "abc"])

    assert scrub("login pw S3cr3t! / pw%20S3cr3t%21 / pw+S3cr3t%21 second-secret") == "login *** / *** / *** ***"
    # Shorter than four characters: no secret of any real service, and would redact ordinary words.
    assert scrub("abc") == "abc"


def test_a_secret_holding_another_is_redacted_whole() -> None:
    assert Scrubber(["abcd", "abcdefgh"])("x abcdefgh y") == "x *** y"


class FailingDestination:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def deliver(self, *_: object) -> None:
        raise self.error


async def test_a_failed_attempt_outcome_and_retry_carry_no_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_AZURE_CONNECTION", CONNECTION_STRING)
    tenants = TenantsConfig.model_validate(
        {
            "tenants": {
                "acme": {
                    "recipe-prefix": "999",
                    "integrations": [
                        {
                            "id": "blob",
                            "type": "azure-blob",
                            "connection-string-secure": "${TEST_AZURE_CONNECTION}",
                            "container": "recipes",
                        }
                    ],
                }
            }
        }
    )
    error = TransientError(
        f"PUT https://acct.blob.core.windows.net/recipes/a.pdf?sv=2022&sig=h5%2Bq failed with key {ACCOUNT_KEY}; "
        f"Authorization: SharedKey acct:c2lnbmF0dXJl"
    )
    deliverer = Deliverer(
        integration_type="azure-blob",
        integration_class=AzureBlobIntegration,
        tenants=tenants,
        store=LocalDirectoryStore(tmp_path),
        destination=FailingDestination(error),
    )

    result = await deliverer.attempt(
        deliver_bundle(tenant="acme", integration_id="blob", integration_type="azure-blob", files=())
    )

    assert result.retry is not None
    for message in (result.outcome.error_message or "", result.retry.error_message):
        assert message == (
            "PUT https://acct.blob.core.windows.net/recipes/a.pdf?sv=2022&sig=*** failed with key ***; "
            "Authorization: SharedKey ***"
        )


async def test_an_unexpected_error_quoting_a_hook_url_differently_is_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_HOOK", "https://hooks.example.net/catch/777/S3cretPath")
    tenants = TenantsConfig.model_validate(
        {
            "tenants": {
                "acme": {
                    "recipe-prefix": "999",
                    "integrations": [{"id": "zap", "type": "zapier", "hook-url": "${TEST_HOOK}"}],
                }
            }
        }
    )
    deliverer = Deliverer(
        integration_type="zapier",
        integration_class=ZapierIntegration,
        tenants=tenants,
        store=LocalDirectoryStore(tmp_path),
        destination=FailingDestination(
            PermanentError("410 from HTTPS://HOOKS.EXAMPLE.NET/catch/777/S3cretPath/ (path /catch/777/S3cretPath)")
        ),
    )

    result = await deliverer.attempt(
        deliver_bundle(tenant="acme", integration_id="zap", integration_type="zapier", files=())
    )

    assert result.outcome.error_message == "410 from *** (path ***)"
