"""The one place errors become HTTP answers (always the JSON error body), plus a server span per request."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, TracerProvider

from relay_ingest_api.adapters.association_store import UpstreamError
from relay_ingest_api.domain import (
    BadUpstreamDataError,
    CorruptRecipeError,
    ForbiddenError,
    IngestError,
    NotFoundError,
    TooLargeError,
    UnauthorizedError,
)
from relay_ingest_api.http import UnreadableBodyError
from relay_ingest_api.ratelimit import RateLimitedError
from relay_ingest_api.schemas import ErrorBody, Problem
from relay_platform.errors import TransientError
from relay_platform.links import LinkExpiredError, LinkInvalidError
from relay_platform.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS
from relay_platform.objectstore import ObjectNotFoundError
from relay_platform.telemetry import span_context_of

logger = logging.getLogger("relay.ingest_api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


# The answer to each kind of refusal; any other ``IngestError`` is the client's input (400).
_STATUS_OF_REFUSAL: dict[type[IngestError], int] = {
    UnauthorizedError: 401,
    ForbiddenError: 403,
    NotFoundError: 404,
    TooLargeError: 413,
    CorruptRecipeError: 500,
    BadUpstreamDataError: 502,
}


def status_of(error: IngestError) -> int:
    """The HTTP status answering ``error``."""
    return next((status for kind, status in _STATUS_OF_REFUSAL.items() if isinstance(error, kind)), 400)


def error_response(
    status: int,
    code: str,
    message: str,
    problems: list[Problem] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = ErrorBody(error=code, message=message, problems=problems)
    return web.Response(
        status=status,
        text=body.model_dump_json(exclude_none=True),
        content_type="application/json",
        headers=headers,
    )


def _from_http_exception(error: web.HTTPException) -> web.Response:
    # aiohttp's own answers (unknown route, wrong method, body over client_max_size) in our JSON shape.
    headers = {k: v for k, v in error.headers.items() if k.lower() in {"allow", "retry-after"}}
    code = _HTTP_CODES.get(error.status, "http_error")
    if error.status == 413:
        code = "body_too_large"
    return error_response(error.status, code, error.reason, headers=headers)


def error_middleware(tracer_provider: TracerProvider | None, *, service: str = "ingest-api") -> Middleware:
    """Errors as JSON answers, a server span per request, and the HTTP metrics: ``relay_http_requests_total`` and
    ``relay_http_request_duration_seconds`` labelled by the route template (``/recipe/{recipe_id}.pdf``), never the
    raw path, whose IDs and link tokens would explode the series and carry customer data."""
    tracer = trace.get_tracer("relay.ingest_api", tracer_provider=tracer_provider)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        started = time.perf_counter()
        status = 500
        try:
            with tracer.start_as_current_span(
                f"{request.method} {route}",
                kind=SpanKind.SERVER,
                # A fresh root on every request (the caller's context is never the parent), so each order is a
                # trace of its own; a re-trigger links back to the orders' original traces (``link_order_traces``)
                # and to a trace its caller names.
                context=Context(),
                links=_trigger_links(request, route),
                attributes={"http.request.method": request.method, "http.route": route},
            ) as span:
                response = await _answer(request, handler)
                span.set_attribute("http.response.status_code", response.status)
            status = response.status
            return response
        except web.HTTPException as passed_on:  # a redirect or other non-error answer raised by a handler
            status = passed_on.status
            raise
        finally:
            # Only methods aiohttp routes: an arbitrary method string would be a label anyone can grow.
            method = request.method if request.method in _KNOWN_METHODS else "OTHER"
            HTTP_REQUESTS.labels(service, route, method, str(status)).inc()
            HTTP_REQUEST_DURATION.labels(service, route).observe(time.perf_counter() - started)

    return middleware


_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Routes that re-run an order's work: their trace is new (the re-run's own), linked to the original one.
LINKED_TRACE_ROUTES = frozenset({"/api/v2/integrations/trigger"})


def _trigger_links(request: web.Request, route: str) -> list[Link]:
    """A span link to the trace named by the request's W3C ``traceparent``, for a re-trigger route; nothing
    otherwise, or when the header is absent or malformed. The orders' own original traces are linked from the
    association store's record (``link_order_traces``); this one is what the caller says (a recipe's trace from its
    logs, say), kept because it is free: the header is read before the span starts, nothing is looked up."""
    if route not in LINKED_TRACE_ROUTES or "traceparent" not in request.headers:
        return []
    linked = span_context_of(request.headers["traceparent"])
    if linked is None:
        return []
    return [Link(linked, attributes={"relay.link": "caller-named-trace"})]


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except IngestError as error:
        status = status_of(error)
        headers = {"WWW-Authenticate": 'Bearer realm="recipe-relay"'} if status == 401 else None
        response = error_response(status, error.code, error.message, error.problems, headers)
        if isinstance(error, UnreadableBodyError):
            # aiohttp closes the connection after this answer (it cannot skip the rest): say so to the client.
            response.force_close()
        return response
    except RateLimitedError as error:
        return error_response(429, "rate_limited", str(error), headers={"Retry-After": str(error.retry_after_s)})
    except LinkExpiredError:
        return error_response(410, "link_expired", "this download link has expired")
    except LinkInvalidError:
        return error_response(404, "not_found", "no such file")
    except ObjectNotFoundError:
        return error_response(404, "not_found", "not found")
    except UpstreamError as error:
        logger.warning("upstream error: %s", error)
        return error_response(502, "upstream_error", "the association store gave an unusable answer")
    except TransientError as error:
        logger.warning("unavailable: %s", error)
        retry_after = str(round(error.retry_after_s or 1))
        return error_response(503, "unavailable", f"{error}; try again later", headers={"Retry-After": retry_after})
    except web.HTTPException as error:
        if error.status >= 400:
            return _from_http_exception(error)
        raise
    except Exception:
        # Last resort so even a bug answers in the JSON error shape; the request body is never logged.
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error")


class SafeAccessLogger(AbstractAccessLogger):
    """Method, path, status, size, duration: never the query string (``apikey=``) nor a link token."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        path = request.path
        if path.startswith("/files/"):
            path = "/files/<token>"
        self.logger.info(
            "%s %s %s %s %.1fms",
            request.method,
            path,
            response.status,
            response.body_length,
            time * 1000,
            extra={"http_method": request.method, "http_path": path, "http_status": response.status},
        )
