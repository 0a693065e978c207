"""One BlobServiceClient per connection string, reused by every attempt and closed with the pool."""

import pytest
from pydantic import SecretStr

from relay_deliver_azure_blob.adapters.blob import BlobClientPool
from relay_deliver_azure_blob.settings import BlobSettings
from relay_platform.errors import TransientError

SAS = "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;SharedAccessSignature=sv=2024-08-04&sig=abc"


async def test_the_same_connection_string_shares_one_client_and_another_gets_its_own() -> None:
    async with BlobClientPool(BlobSettings()) as pool:
        first = pool.client(SecretStr(SAS))
        again = pool.client(SecretStr(SAS))
        other = pool.client(SecretStr(SAS.replace("sig=abc", "sig=def")))

    assert first is again
    assert other is not first


async def test_a_closed_pool_hands_out_no_new_clients() -> None:
    pool = BlobClientPool(BlobSettings())
    async with pool:
        pass

    with pytest.raises(TransientError, match="shutting down"):
        pool.client(SecretStr(SAS))
