"""Signed, expiring download links for artifacts (served by the ingest API at ``/files/<token>``)."""

from __future__ import annotations

import time

from itsdangerous import BadSignature, URLSafeSerializer
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from relay_platform.errors import PermanentError

_SALT = "relay-download-link"


class LinkSettings(BaseSettings):
    """``LINKS_SIGNING_KEY`` must be the same for the signer (deliverers) and the verifier (ingest API)."""

    model_config = SettingsConfigDict(env_prefix="LINKS_", extra="ignore")

    signing_key: SecretStr = SecretStr("dev-only-signing-key-change-me")
    public_base_url: str = "http://127.0.0.1:8080"
    ttl_s: int = 7 * 24 * 3600


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
        """``(key, name, mime_type)`` for a valid, unexpired token."""
        try:
            payload = self._serializer.loads(token)
        except BadSignature as error:
            raise LinkInvalidError("invalid download link") from error
        if not isinstance(payload, dict) or not {"k", "n", "m", "e"} <= payload.keys():
            raise LinkInvalidError("invalid download link")
        if int(payload["e"]) < (now if now is not None else time.time()):
            raise LinkExpiredError("download link expired")
        return str(payload["k"]), str(payload["n"]), str(payload["m"])
