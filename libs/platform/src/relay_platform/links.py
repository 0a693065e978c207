"""Signed, expiring download links for artifacts (served by the ingest API at ``/files/<token>``)."""

from __future__ import annotations

import time

from itsdangerous import BadData, URLSafeSerializer
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from relay_platform.errors import PermanentError
from relay_platform.shared_secret import check_shared_secret

# Binds tokens to this one purpose: the same key with another salt signs nothing a download link accepts.
_SALT = "relay-download-link"


class LinkSettings(BaseSettings):
    """Where download links point and how they are signed (env ``LINKS_*``).

    ``LINKS_SIGNING_KEY`` has no default: whoever knows the key can mint a link to any object of any tenant, so a
    published default makes every link forgeable. The signer (deliverers) and the verifier (ingest API) share it;
    at least 32 random characters, never a placeholder. ``relay dev`` generates one under ``var/dev``.
    """

    model_config = SettingsConfigDict(
        env_prefix="LINKS_", extra="ignore", validate_by_name=True, hide_input_in_errors=True
    )

    # Aliased to its variable so a missing or weak key stops start-up naming LINKS_SIGNING_KEY.
    signing_key: SecretStr = Field(validation_alias="LINKS_SIGNING_KEY")
    public_base_url: str = "http://127.0.0.1:8080"
    ttl_s: int = 7 * 24 * 3600

    @field_validator("signing_key")
    @classmethod
    def _strong_key(cls, value: SecretStr) -> SecretStr:
        return check_shared_secret(value)


class LinkExpiredError(PermanentError):
    """The link was genuine but its time is up."""


class LinkInvalidError(PermanentError):
    """The token was not signed by us or was altered."""


class LinkSigner:
    def __init__(self, settings: LinkSettings) -> None:
        self._settings = settings
        self._serializer = URLSafeSerializer(settings.signing_key.get_secret_value(), salt=_SALT)

    def url_for(self, key: str, name: str, mime_type: str, *, now: float | None = None) -> str:
        """An absolute URL that serves object ``key`` as ``name`` until the TTL passes."""
        expires = int((now if now is not None else time.time()) + self._settings.ttl_s)
        token = self._serializer.dumps({"k": key, "n": name, "m": mime_type, "e": expires})
        return f"{self._settings.public_base_url.rstrip('/')}/files/{token}"

    def verify(self, token: str, *, now: float | None = None) -> tuple[str, str, str]:
        """``(key, name, mime_type)`` for a valid, unexpired token. The key names the tenant (``bundles/<tenant>/``)
        and is part of what is signed, so a link cannot be pointed at another tenant's object."""
        try:
            payload = self._serializer.loads(token)
        except BadData as error:
            raise LinkInvalidError("invalid download link") from error
        if not isinstance(payload, dict) or not {"k", "n", "m", "e"} <= payload.keys():
            raise LinkInvalidError("invalid download link")
        if int(payload["e"]) < (now if now is not None else time.time()):
            raise LinkExpiredError("download link expired")
        return str(payload["k"]), str(payload["n"]), str(payload["m"])
