"""ingest-api settings (env prefix ``INGEST_API_``); broker, object store and links keep their own prefixes."""

from __future__ import annotations

from pydantic import Field, IPvAnyNetwork, SecretStr, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from relay_contracts.recipe import RECIPE_LIMITS, RecipeLimits
from relay_ingest_api.domain import DEFAULT_MAX_TRIGGER_FANOUT
from relay_platform.links import LinkSettings
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import ServiceSettings
from relay_platform.shared_secret import check_shared_secret, is_loopback_url

SERVICE = "ingest-api"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="INGEST_API_", extra="ignore", validate_by_name=True, hide_input_in_errors=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    association_store_url: str = "http://127.0.0.1:8081"
    association_store_timeout_s: float = Field(default=3.0, gt=0, lt=5)
    # The association store's ASSOCIATION_STORE_API_TOKEN, sent as a bearer token; required unless the store is on
    # loopback (where it may run without one, see its settings). Aliased so a problem names the variable.
    association_store_token: SecretStr | None = Field(
        default=None, validation_alias="INGEST_API_ASSOCIATION_STORE_TOKEN", validate_default=True
    )
    # Every publish is bounded so a lost broker turns into a 503 well inside the client's 5 s budget.
    publish_timeout_s: float = Field(default=3.0, gt=0, lt=5)
    readiness_timeout_s: float = Field(default=1.0, gt=0, lt=5)
    retry_after_s: int = Field(default=2, ge=1, description="Retry-After sent with 503 answers.")
    max_items: int = Field(default=1000, ge=1)
    max_body: int = Field(default=5 * 1024 * 1024, ge=1024)
    # Pick tickets render in worker threads; bounded so renders never starve the object store's threads.
    max_concurrent_renders: int = Field(default=4, ge=1)
    # GET /recipe/<id>.pdf (anonymous for public recipes; see renders.py): rendered PDFs are cached by recipe version
    # up to render_cache_bytes; a render waits at most render_slot_wait_s for one of the slots above (503 after);
    # each client (its API key, else its address) gets render_burst renders, refilled at render_rate_per_s (429).
    render_cache_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    render_slot_wait_s: float = Field(default=1.0, ge=0, lt=5)
    render_rate_per_s: float = Field(default=2.0, gt=0)
    render_burst: int = Field(default=30, ge=1)
    # Proxies (addresses or networks, JSON list) whose X-Forwarded-For names the client; none by default, so the
    # header is ignored: anyone can write it.
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()
    # Recipes are bounded (the seed schema is not): 413 for a count over a limit, 400 for a string or depth.
    recipe_max_components: int = Field(default=RECIPE_LIMITS.max_components, ge=1)
    recipe_max_views: int = Field(default=RECIPE_LIMITS.max_views, ge=1)
    recipe_max_attachments: int = Field(default=RECIPE_LIMITS.max_attachments, ge=1)
    recipe_max_array_items: int = Field(default=RECIPE_LIMITS.max_array_items, ge=1)
    # Floors: a recipe's own ID (up to 117 characters) and its deepest seed structure (7 levels) must still fit.
    recipe_max_string_length: int = Field(default=RECIPE_LIMITS.max_string_length, ge=128)
    recipe_max_depth: int = Field(default=RECIPE_LIMITS.max_depth, ge=8)

    object_store: ObjectStoreSettings = Field(default_factory=ObjectStoreSettings)
    # Manual re-triggers: at most this many triggers (order lines plus the raw feed) per request, 413 beyond;
    # charged to the tenant's fan-out bucket (one token each, refilled at trigger_fanout_per_s).
    max_trigger_fanout: int = Field(default=DEFAULT_MAX_TRIGGER_FANOUT, ge=1)
    trigger_fanout_per_s: float = Field(default=50.0, gt=0)
    # Unknown API keys per client address: after this many the client gets 429 for any key until they drain.
    failed_key_burst: int = Field(default=20, ge=1)
    failed_key_per_s: float = Field(default=0.2, gt=0)
    links: LinkSettings = Field(default_factory=LinkSettings)

    @field_validator("association_store_token")
    @classmethod
    def _token_for_a_reachable_store(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None:
            return check_shared_secret(value)
        url = info.data.get("association_store_url")
        if url is not None and not is_loopback_url(url):
            msg = (
                "INGEST_API_ASSOCIATION_STORE_TOKEN is required when INGEST_API_ASSOCIATION_STORE_URL is not on "
                "loopback: set it to the store's ASSOCIATION_STORE_API_TOKEN"
            )
            raise ValueError(msg)
        return None

    def recipe_limits(self) -> RecipeLimits:
        """The ``recipe_max_*`` settings as the limits ``prepare_recipe`` checks."""
        return RecipeLimits(
            max_components=self.recipe_max_components,
            max_views=self.recipe_max_views,
            max_attachments=self.recipe_max_attachments,
            max_array_items=self.recipe_max_array_items,
            max_string_length=self.recipe_max_string_length,
            max_depth=self.recipe_max_depth,
        )
