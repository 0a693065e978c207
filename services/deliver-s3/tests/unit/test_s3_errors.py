"""S3 failures are classified: refusals permanent (naming the bucket, never the keys), outages transient."""

from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from relay_deliver_s3.adapters.s3 import translate_botocore_error, translate_client_error
from relay_platform.errors import PermanentError, TransientError


def client_error(code: str, status: int, headers: dict[str, str] | None = None) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "AKIAEXAMPLE was refused"},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}},
    }
    return ClientError(response, "PutObject")


@pytest.mark.parametrize(
    ("code", "status"),
    [("InvalidAccessKeyId", 403), ("SignatureDoesNotMatch", 403), ("AccessDenied", 403), ("", 403)],
)
def test_refused_credentials_are_permanent_and_name_the_bucket(code: str, status: int) -> None:
    error = translate_client_error(client_error(code, status), "orders")

    assert isinstance(error, PermanentError)
    assert "S3 refused the credentials for bucket 'orders'" in str(error)
    assert "AKIAEXAMPLE" not in str(error)


def test_a_missing_bucket_is_permanent() -> None:
    error = translate_client_error(client_error("NoSuchBucket", 404), "orders")

    assert isinstance(error, PermanentError)
    assert str(error) == "S3 bucket 'orders' does not exist (NoSuchBucket)"


def test_a_bucket_in_another_region_is_permanent() -> None:
    error = translate_client_error(client_error("PermanentRedirect", 301), "orders")

    assert isinstance(error, PermanentError)
    assert "not in the configured region" in str(error)


@pytest.mark.parametrize(
    ("code", "status"), [("SlowDown", 503), ("InternalError", 500), ("", 502), ("TooManyRequests", 429)]
)
def test_throttling_and_server_errors_are_transient(code: str, status: int) -> None:
    error = translate_client_error(client_error(code, status, {"retry-after": "7"}), "orders")

    assert isinstance(error, TransientError)
    assert error.retry_after_s == 7.0


def test_another_client_error_is_permanent() -> None:
    assert isinstance(translate_client_error(client_error("InvalidObjectState", 400), "orders"), PermanentError)


def test_connection_failures_are_transient_and_configuration_mistakes_permanent() -> None:
    unreachable = translate_botocore_error(EndpointConnectionError(endpoint_url="http://x"), "orders")
    timed_out = translate_botocore_error(ReadTimeoutError(endpoint_url="http://x"), "orders")
    no_keys = translate_botocore_error(NoCredentialsError(), "orders")
    bad_call = translate_botocore_error(ParamValidationError(report="bad"), "orders")

    assert isinstance(unreachable, TransientError)
    assert isinstance(timed_out, TransientError)
    assert isinstance(no_keys, PermanentError)
    assert isinstance(bad_call, PermanentError)
