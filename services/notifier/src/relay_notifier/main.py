"""Composition root: broker, handler, the SMTP mailer and the sent-notices table, opened once per process."""

from __future__ import annotations

import contextlib

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from relay_notifier.adapters.sent import SqlSentNotices
from relay_notifier.adapters.smtp import SmtpConfig, SmtpMailer, build_email
from relay_notifier.handlers import Runtime, make_router
from relay_notifier.service import SERVICE
from relay_notifier.settings import Settings
from relay_platform.broker import make_broker
from relay_platform.tenants import TenantsConfig, load_tenants


def smtp_config(settings: Settings) -> SmtpConfig:
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        from_address=settings.from_address,
        use_tls=settings.smtp_use_tls,
        start_tls=settings.smtp_start_tls,
        username=settings.smtp_username,
        password=settings.smtp_password,
        timeout_s=settings.smtp_timeout_s,
        send_attempts=settings.smtp_send_attempts,
        retry_wait_s=settings.smtp_retry_wait_s,
    )


def create_app(
    settings: Settings | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    tenants: TenantsConfig | None = None,
) -> FastStream:
    """The notifier app; a bad tenant file raises ``ConfigError`` here, before anything starts.

    The SMTP connection is opened on the first notice (an SMTP outage never stops the service from starting).
    """
    settings = settings or Settings()
    tenants = tenants if tenants is not None else load_tenants(settings.tenants_file)
    broker = make_broker(settings.kafka, service=SERVICE, tracer_provider=tracer_provider)
    runtime = Runtime(tenants=tenants, from_address=settings.from_address, build_email=build_email)
    broker.include_router(make_router(runtime, settings.kafka))
    resources = contextlib.AsyncExitStack()

    async def on_startup() -> None:
        runtime.sent = await resources.enter_async_context(
            SqlSentNotices.open(settings.database_url, connect_timeout_s=settings.database_connect_timeout_s)
        )
        mailer = SmtpMailer(smtp_config(settings))
        resources.push_async_callback(mailer.close)
        runtime.mailer = mailer

    async def after_shutdown() -> None:
        runtime.mailer = None
        runtime.sent = None
        await resources.aclose()

    return FastStream(broker, on_startup=[on_startup], after_shutdown=[after_shutdown])
