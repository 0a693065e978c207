"""Tenant configuration (``config/*.yaml``): tenants, API-key hashes, permissions and integrations.

Loaded and validated once at start-up; a bad file stops the service with a message naming the bad path.
Secrets never appear in the file: secret settings are ``${ENV_NAME}`` references resolved when used.

``allowed-asset-hosts`` lists hosts a tenant trusts to serve its assets from private or loopback addresses (the
asset fetcher refuses those otherwise). An entry honours ports: ``assets.internal`` allows only the URL scheme's
default port (80 for http, 443 for https), ``assets.internal:8443`` exactly that port, ``assets.internal:*`` every
port; IPv6 in brackets (``[fd00::1]:8080``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from relay_contracts.messages import Feed, OrderEventType
from relay_contracts.topics import ALL_TOPICS, OMS_TOPIC_PATTERN, IntegrationType, oms_orders_topic
from relay_platform.errors import PermanentError

# ``integrations:trigger``: manual re-triggers (seed 000 "Trigger Integrations"); they re-send files to the
# factory, so the OMS's ``order-tracking`` alone does not grant them.
Permission = Literal["order-tracking", "recipes:write", "recipes:read", "integrations:trigger", "admin"]
ALL_PERMISSIONS: tuple[Permission, ...] = get_args(Permission)

_SECRET_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_IDENT = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class ConfigError(Exception):
    """The tenant configuration file cannot be used; the message names the file and the bad path."""


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A reference to a secret held in an environment variable; the value is read only when needed."""

    env: str

    def resolve(self) -> SecretStr:
        value = os.environ.get(self.env)
        if not value:
            raise PermanentError(f"secret reference ${{{self.env}}} is not set in the environment")
        return SecretStr(value)

    def __str__(self) -> str:
        return f"${{{self.env}}}"


@dataclass(frozen=True, slots=True)
class LiteralOrSecret:
    """A setting that may be written literally or as a ``${ENV}`` reference (e.g. a Zapier hook URL)."""

    literal: str | None = None
    ref: SecretRef | None = None

    def resolve(self) -> SecretStr:
        if self.ref is not None:
            return self.ref.resolve()
        return SecretStr(self.literal or "")

    def __str__(self) -> str:
        return str(self.ref) if self.ref else "<literal>"


def _parse_secret_ref(value: object) -> SecretRef:
    if isinstance(value, SecretRef):
        return value
    match = _SECRET_REF.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("must be an environment reference like ${MY_SECRET}; secrets are never written in config")
    return SecretRef(match.group(1))


def _parse_literal_or_secret(value: object) -> LiteralOrSecret:
    if isinstance(value, LiteralOrSecret):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string or an environment reference like ${NAME}")
    match = _SECRET_REF.match(value)
    return LiteralOrSecret(ref=SecretRef(match.group(1))) if match else LiteralOrSecret(literal=value)


def _parse_email_list(value: object) -> tuple[str, ...]:
    """Seed 000 lists are comma-separated strings; YAML lists are accepted too."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, list | tuple) else None
    if items is None:
        raise ValueError("must be a comma-separated string or a list of e-mail addresses")
    addresses = tuple(str(item).strip() for item in items if str(item).strip())
    for address in addresses:
        if not re.fullmatch(r"[^@\s,]+@[^@\s,]+", address):
            raise ValueError(f"{address!r} is not an e-mail address")
    return addresses


SecretSetting = Annotated[SecretRef, BeforeValidator(_parse_secret_ref)]
MaybeSecretSetting = Annotated[LiteralOrSecret, BeforeValidator(_parse_literal_or_secret)]
EmailList = Annotated[tuple[str, ...], BeforeValidator(_parse_email_list)]


# --- allowed-asset-hosts -------------------------------------------------------------------------------------------

ANY_PORT = "*"
DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_BRACKETED = re.compile(r"^\[([^\]]+)\](?::(.*))?$")


@dataclass(frozen=True, slots=True)
class AssetHost:
    """One ``allowed-asset-hosts`` entry. ``host`` alone allows only the URL scheme's default port (80 for http,
    443 for https); ``host:port`` allows exactly that port; ``host:*`` every port (for a trusted host whose port
    changes, as in tests). IPv6 addresses are written in brackets: ``[fd00::1]:8443``."""

    host: str
    port: int | None = None
    any_port: bool = False

    def allows(self, host: str, port: int, scheme: str) -> bool:
        """Whether a URL ``scheme://host:port`` (``host`` lower case, IPv6 without brackets) is this entry."""
        if host != self.host:
            return False
        if self.any_port:
            return True
        return port == (self.port if self.port is not None else DEFAULT_PORTS.get(scheme))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.any_port:
            return f"{host}:{ANY_PORT}"
        return host if self.port is None else f"{host}:{self.port}"


def parse_asset_host(entry: str) -> AssetHost:
    """Parse an ``allowed-asset-hosts`` entry (``host``, ``host:port``, ``host:*``, ``[v6]:port``); ``ValueError``
    says what is wrong. Host names are compared in lower case, as written (international names in ``xn--`` form)."""
    text = entry.strip().lower()
    if not text or re.search(r"[/@?#%\s]", text):
        raise ValueError(f"{entry!r}: not a host, host:port or [IPv6]:port (no URL, path or IPv6 zone)")
    port_text: str | None = None
    if bracketed := _BRACKETED.match(text):
        host, port_text = bracketed.group(1), bracketed.group(2)
        try:
            ipaddress.IPv6Address(host)
        except ValueError as error:
            raise ValueError(f"{entry!r}: [...] must hold an IPv6 address") from error
    elif text.count(":") > 1:
        host = text  # a bare IPv6 address: no port can follow it unambiguously
        try:
            ipaddress.IPv6Address(host)
        except ValueError as error:
            raise ValueError(f"{entry!r}: not a host, host:port or [IPv6]:port") from error
    else:
        host, sep, port_text = text.partition(":")
        if not sep:
            port_text = None
        if not _HOST_NAME.match(host):
            raise ValueError(f"{entry!r}: not a host name, IPv4 address, host:port or [IPv6]:port")
    canonical = str(ipaddress.IPv6Address(host)) if ":" in host else host
    if port_text is None:
        return AssetHost(canonical)
    if port_text == ANY_PORT:
        return AssetHost(canonical, any_port=True)
    if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{entry!r}: the port must be 1-65535 or {ANY_PORT}")
    return AssetHost(canonical, int(port_text))


def _parse_asset_hosts(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise ValueError("must be a list of host, host:port or host:* entries")  # noqa: TRY004 - pydantic wants it
    return tuple(str(parse_asset_host(str(item))) for item in value)


AssetHostList = Annotated[tuple[str, ...], BeforeValidator(_parse_asset_hosts)]


class ConfigModel(BaseModel):
    """Config files use the seed's kebab-case names (``success-notification-list``)."""

    model_config = ConfigDict(
        alias_generator=lambda name: name.replace("_", "-"),
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
        extra="forbid",
        arbitrary_types_allowed=True,
    )


class RetryPolicy(ConfigModel):
    """Seed 000: one attempt plus up to two retries; back-off between them, with jitter added."""

    max_attempts: int = Field(default=3, ge=1, le=10)
    backoff_s: tuple[float, ...] = Field(default=(30.0, 120.0), min_length=1)
    retry_after_cap_s: float = Field(default=600.0, ge=0)


class HealthPolicy(ConfigModel):
    """Destination health, per integration and opt-in (without it, every failed delivery keeps seed 000's course:
    retried, then its failure notice).

    After ``pause-after-failures`` consecutive failed attempts (transient ones: the destination did not answer, or
    answered "later"; a success resets the count) the retry service pauses the integration as unhealthy: its new
    deliveries are held, not attempted and not failed, and its failure list gets one notice. A probe then sends the
    oldest held delivery, first after ``probe-interval-s``, then at doubling intervals up to ``probe-max-interval-s``;
    the first that succeeds resumes the integration and everything held goes out, oldest first.
    """

    pause_after_failures: int = Field(ge=1, le=10_000)
    probe_interval_s: float = Field(default=30.0, gt=0, le=86_400)
    probe_max_interval_s: float = Field(default=600.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _ordered(self) -> HealthPolicy:
        if self.probe_max_interval_s < self.probe_interval_s:
            raise ValueError("probe-max-interval-s must not be below probe-interval-s")
        return self


class IntegrationBase(ConfigModel):
    id: str = Field(pattern=_IDENT)
    description: str = ""
    enabled: bool = True
    success_notification_list: EmailList = ()
    failure_notification_list: EmailList = ()
    feeds: tuple[Feed, ...] = Field(default=("order",), min_length=1)
    order_events: tuple[OrderEventType, ...] = ("linked", "created", "updated", "cancelled")
    include_temporary_recipes: bool = True
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    health: HealthPolicy | None = None


class EmailIntegration(IntegrationBase):
    type: Literal["email"]
    to: EmailList = Field(min_length=1)
    subject_prefix: str = ""
    attachment_limit_bytes: int = Field(default=20 * 1024 * 1024, ge=0)


class SftpIntegration(IntegrationBase):
    type: Literal["sftp"]
    host: str
    port: int = Field(default=22, ge=1, le=65535)
    username: str
    password: SecretSetting | None = None
    private_key: SecretSetting | None = None
    known_host_key: str | None = None
    insecure_accept_any_host_key: bool = False
    directory: str = "."
    subfolders: Literal["none", "order", "recipe"] = "none"

    @model_validator(mode="after")
    def _auth_and_host_key(self) -> SftpIntegration:
        if self.password is None and self.private_key is None:
            raise ValueError("needs password or private-key")
        if self.known_host_key is None and not self.insecure_accept_any_host_key:
            raise ValueError("needs known-host-key (or insecure-accept-any-host-key: true for development)")
        return self


class S3Integration(IntegrationBase):
    type: Literal["s3"]
    access_key_secret: SecretSetting
    secret_key_secret: SecretSetting
    bucket: str = Field(min_length=3, max_length=63)
    region: str = "us-east-1"
    prefix: str = ""
    endpoint_url: str | None = None


class AzureBlobIntegration(IntegrationBase):
    type: Literal["azure-blob"]
    connection_string_secure: SecretSetting
    container: str = Field(min_length=3, max_length=63)
    prefix: str = ""


class ZapierIntegration(IntegrationBase):
    type: Literal["zapier"]
    hook_url: MaybeSecretSetting


Integration = Annotated[
    EmailIntegration | SftpIntegration | S3Integration | AzureBlobIntegration | ZapierIntegration,
    Field(discriminator="type"),
]


class ApiKey(ConfigModel):
    name: str = Field(pattern=_IDENT)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    permissions: tuple[Permission, ...] = Field(min_length=1)

    def allows(self, permission: Permission) -> bool:
        return permission in self.permissions or "admin" in self.permissions


class RateLimit(ConfigModel):
    per_second: float = Field(default=50.0, gt=0)
    burst: int = Field(default=100, ge=1)


class ShopifySettings(ConfigModel):
    """The tenant's Shopify store, which sends its order webhooks to
    ``POST /api/v2/integrations/shopify/<tenant>/webhooks`` (orders/create, orders/updated, orders/cancelled,
    refunds/create), each signed with ``webhook-secret`` (the Shopify app's client secret: an ``${ENV}`` reference).

    Only line items whose ``recipe-property`` (a line-item property, such as the customizer's ``_recipeId``) holds a
    recipe ID or a recipe link are tracked; the rest of the order (customer, addresses, payment, notes) is discarded.
    A delivery whose ``X-Shopify-Triggered-At`` is older than ``max-age-h`` is refused (Shopify retries for 48 h).
    """

    webhook_secret: SecretSetting
    recipe_property: str = Field(default="_recipeId", min_length=1, max_length=255)
    max_age_h: float = Field(default=72.0, gt=0, le=24 * 30)
    # When set, a delivery must also name this shop in ``X-Shopify-Shop-Domain`` (the secret alone authenticates
    # the sender; this catches a secret shared by two stores of one app pointed at the wrong tenant).
    shop_domain: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$")


class Tenant(ConfigModel):
    recipe_prefix: str = Field(pattern=r"^[A-Za-z0-9]{1,16}$")
    recipe_read: Literal["public", "key"] = "public"
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    api_keys: tuple[ApiKey, ...] = ()
    # Hosts whose assets may be fetched even at private/loopback addresses, each ``host`` (the URL scheme's default
    # port only), ``host:port`` or ``host:*`` (every port), stored in canonical form; see ``AssetHost``.
    allowed_asset_hosts: AssetHostList = ()
    # The topic this tenant's OMS publishes order events to (default ``oms.<tenant>.orders.v1``); events read
    # there belong to this tenant whatever their payload says. Production locks it down with Kafka ACLs.
    oms_topic: str | None = Field(default=None, pattern=OMS_TOPIC_PATTERN)
    # Native Shopify order webhooks (seed 002's prebuilt integrations); absent: the webhook route answers 401.
    shopify: ShopifySettings | None = None
    integrations: tuple[Integration, ...] = ()

    @model_validator(mode="after")
    def _unique_integration_ids(self) -> Tenant:
        ids = [integration.id for integration in self.integrations]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"integration ids must be unique; repeated: {', '.join(duplicates)}")
        return self

    def integration(self, integration_id: str) -> IntegrationBase | None:
        return next((i for i in self.integrations if i.id == integration_id), None)

    def enabled_integrations(self) -> tuple[IntegrationBase, ...]:
        return tuple(integration for integration in self.integrations if integration.enabled)

    def recipe_feed(self, *, temporary: bool) -> tuple[str, ...]:
        """The raw recipe feed of a saved recipe: enabled integrations taking the ``recipe`` feed; a temporary
        recipe only where the integration includes temporary recipes."""
        return tuple(
            integration.id
            for integration in self.enabled_integrations()
            if "recipe" in integration.feeds and (not temporary or integration.include_temporary_recipes)
        )

    def order_feed(self, event_type: OrderEventType) -> tuple[str, ...]:
        """The order feed of an order event: enabled integrations taking the ``order`` feed and this event type."""
        return tuple(
            integration.id
            for integration in self.enabled_integrations()
            if "order" in integration.feeds and event_type in integration.order_events
        )

    def manual_feed(
        self, feed: Feed, named: Sequence[str] | None = None, *, temporary: bool = False
    ) -> tuple[str, ...]:
        """The integrations a manual trigger of ``feed`` fires: the ``named`` ones that are enabled and take that
        feed, else every enabled one taking it (for the raw feed, temporary recipes only where included).

        Unlike the automatic feeds, a manual order trigger ignores ``order-events``: the operator asks for it."""
        if named is not None:
            chosen = (self.integration(integration_id) for integration_id in named)
            return tuple(i.id for i in chosen if i is not None and i.enabled and feed in i.feeds)
        if feed == "recipe":
            return self.recipe_feed(temporary=temporary)
        return tuple(integration.id for integration in self.enabled_integrations() if "order" in integration.feeds)


@dataclass(frozen=True, slots=True)
class KeyMatch:
    tenant_id: str
    tenant: Tenant
    key: ApiKey


class TenantsConfig(ConfigModel):
    tenants: dict[Annotated[str, Field(pattern=_IDENT)], Tenant]

    @model_validator(mode="after")
    def _unique_prefixes_and_keys(self) -> TenantsConfig:
        prefixes: dict[str, str] = {}
        topics: dict[str, str] = {}
        hashes: set[str] = set()
        for tenant_id, tenant in self.tenants.items():
            if tenant.recipe_prefix in prefixes:
                raise ValueError(
                    f"recipe-prefix {tenant.recipe_prefix!r} used by both {prefixes[tenant.recipe_prefix]!r} "
                    f"and {tenant_id!r}"
                )
            prefixes[tenant.recipe_prefix] = tenant_id
            topic = self.oms_topic_of(tenant_id)
            if topic in ALL_TOPICS:
                raise ValueError(f"oms-topic of {tenant_id!r} is one of Recipe Relay's own topics: {topic}")
            if topic in topics:
                raise ValueError(f"oms-topic {topic!r} used by both {topics[topic]!r} and {tenant_id!r}")
            topics[topic] = tenant_id
            for key in tenant.api_keys:
                if key.sha256 in hashes:
                    raise ValueError(f"API key {key.name!r} of {tenant_id!r} is also configured elsewhere")
                hashes.add(key.sha256)
        return self

    def match_key(self, raw_key: str) -> KeyMatch | None:
        """The tenant and key record for a presented API key, compared by SHA-256 hash only."""
        digest = hash_api_key(raw_key)
        for tenant_id, tenant in self.tenants.items():
            for key in tenant.api_keys:
                if key.sha256 == digest:
                    return KeyMatch(tenant_id, tenant, key)
        return None

    def tenant_for_recipe(self, recipe_id: str) -> tuple[str, Tenant] | None:
        """Recipe IDs are ``<prefix>-<random>``; the prefix names the owning tenant."""
        prefix, sep, _ = recipe_id.partition("-")
        if not sep:
            return None
        for tenant_id, tenant in self.tenants.items():
            if tenant.recipe_prefix == prefix:
                return tenant_id, tenant
        return None

    def owns_recipe(self, tenant_id: str, recipe_id: str) -> bool:
        """Whether ``recipe_id`` is one of ``tenant_id``'s recipes (its prefix is the tenant's)."""
        owner = self.tenant_for_recipe(recipe_id)
        return owner is not None and owner[0] == tenant_id

    def oms_topic_of(self, tenant_id: str) -> str:
        """The topic ``tenant_id``'s OMS publishes to (configured, or ``oms.<tenant>.orders.v1``)."""
        configured = self.tenants[tenant_id].oms_topic
        return configured if configured is not None else oms_orders_topic(tenant_id)

    def oms_topics(self) -> dict[str, str]:
        """``{topic: tenant}`` for every tenant's OMS topic."""
        return {self.oms_topic_of(tenant_id): tenant_id for tenant_id in self.tenants}

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self.tenants.get(tenant_id)

    def integration(self, tenant_id: str, integration_id: str) -> IntegrationBase | None:
        """``tenant_id``'s integration ``integration_id``; ``None`` for an unknown tenant or integration. A
        message names both, and the integration is looked up only within its tenant."""
        tenant = self.tenants.get(tenant_id)
        return tenant.integration(integration_id) if tenant is not None else None

    def iter_integrations(self) -> Iterator[tuple[str, IntegrationBase]]:
        for tenant_id, tenant in self.tenants.items():
            for integration in tenant.integrations:
                yield tenant_id, integration


def hash_api_key(raw_key: str) -> str:
    """The only form in which an API key is stored: its SHA-256 hex digest."""
    # surrogatepass: a header of non-UTF-8 bytes reaches us with lone surrogates; it must hash (to no key), not raise.
    return hashlib.sha256(raw_key.encode("utf-8", "surrogatepass")).hexdigest()


def _format_location(loc: tuple[int | str, ...]) -> str:
    # Discriminated unions add the tag to the location ("integrations.0.s3.bucket"); keep it, it helps.
    return ".".join(str(part) for part in loc)


def load_tenants(path: Path) -> TenantsConfig:
    """Read and validate a tenant file; raise ``ConfigError`` naming each bad path."""
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read tenant config: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    try:
        return TenantsConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{_format_location(e['loc']) or '<root>'}: {e['msg']}" for e in error.errors(include_url=False)
        )
        raise ConfigError(f"{path}: invalid tenant config: {problems}") from error


def integration_type(integration: IntegrationBase) -> IntegrationType:
    value: IntegrationType = getattr(integration, "type")  # noqa: B009 - every concrete subclass has it
    return value
