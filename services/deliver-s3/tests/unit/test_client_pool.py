"""One S3 client per endpoint/region/credentials, reused by every attempt and closed with the pool."""

import pytest
from pydantic import SecretStr

from relay_deliver_s3.adapters.s3 import S3ClientPool
from relay_deliver_s3.domain import S3Target
from relay_deliver_s3.settings import UploadSettings
from relay_platform.errors import PermanentError, TransientError


def target(access_key: str = "AKIA1", secret: str = "s1", endpoint: str | None = "http://127.0.0.1:9") -> S3Target:
    return S3Target(
        bucket="orders",
        region="eu-west-1",
        endpoint_url=endpoint,
        access_key_id=SecretStr(access_key),
        secret_access_key=SecretStr(secret),
    )


async def test_the_same_credentials_share_one_client_and_others_get_their_own() -> None:
    async with S3ClientPool(UploadSettings()) as pool:
        first = await pool.client(target())
        again = await pool.client(target())
        other_key = await pool.client(target(access_key="AKIA2"))
        rotated_secret = await pool.client(target(secret="s2"))

    assert first is again
    assert len({id(first), id(other_key), id(rotated_secret)}) == 3


async def test_a_closed_pool_hands_out_no_new_clients() -> None:
    pool = S3ClientPool(UploadSettings())
    async with pool:
        pass

    with pytest.raises(TransientError, match="shutting down"):
        await pool.client(target())


async def test_an_invalid_endpoint_url_is_a_permanent_error() -> None:
    async with S3ClientPool(UploadSettings()) as pool:
        with pytest.raises(PermanentError, match="check endpoint-url"):
            await pool.client(target(endpoint="not a url"))
