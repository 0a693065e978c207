"""Azure failures are classified: refusals permanent (naming the container, never the SAS), outages transient."""

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import StorageErrorCode

from relay_deliver_azure_blob.adapters.blob import translate_azure_error
from relay_platform.errors import PermanentError, TransientError


class FakeResponse:
    """The parts of an azure-core HTTP response the translation reads."""

    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.reason = "reason"
        self.headers = headers or {}

    def text(self) -> str:
        return ""


def http_error(
    status: int, code: object, cls: type[HttpResponseError] = HttpResponseError, headers: dict[str, str] | None = None
) -> HttpResponseError:
    error = cls(message="sig=SECRET refused", response=FakeResponse(status, headers))  # type: ignore[arg-type]
    error.error_code = code  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    "error",
    [
        http_error(403, StorageErrorCode.AUTHENTICATION_FAILED, ClientAuthenticationError),
        http_error(403, StorageErrorCode.AUTHORIZATION_FAILURE),
        http_error(403, "AuthorizationPermissionMismatch"),
        http_error(403, None),
    ],
)
def test_a_refused_sas_is_permanent_and_names_the_container(error: HttpResponseError) -> None:
    translated = translate_azure_error(error, "orders")

    assert isinstance(translated, PermanentError)
    assert "Azure refused the connection-string-secure for container 'orders'" in str(translated)
    assert "SECRET" not in str(translated)


def test_a_missing_container_is_permanent() -> None:
    translated = translate_azure_error(http_error(404, "ContainerNotFound", ResourceNotFoundError), "orders")

    assert isinstance(translated, PermanentError)
    assert str(translated) == "Azure container 'orders' does not exist (ContainerNotFound)"


@pytest.mark.parametrize(("status", "code"), [(503, "ServerBusy"), (500, "InternalError"), (429, None), (408, None)])
def test_busy_and_server_errors_are_transient_with_retry_after(status: int, code: str | None) -> None:
    translated = translate_azure_error(http_error(status, code, headers={"Retry-After": "12"}), "orders")

    assert isinstance(translated, TransientError)
    assert translated.retry_after_s == 12.0


def test_another_client_error_is_permanent() -> None:
    assert isinstance(translate_azure_error(http_error(400, "InvalidBlobOrBlock"), "orders"), PermanentError)


@pytest.mark.parametrize("error", [ServiceRequestError("refused"), ServiceResponseError("reset")])
def test_connection_failures_are_transient(error: Exception) -> None:
    translated = translate_azure_error(error, "orders")  # type: ignore[arg-type]

    assert isinstance(translated, TransientError)
    assert "cannot reach Azure Blob for container 'orders'" in str(translated)
