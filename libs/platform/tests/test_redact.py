"""Credentials recognisable by their shape are redacted; ordinary text is left exactly as it was."""

from __future__ import annotations

import json

import pytest

from relay_platform.redact import redact_secrets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Query parameters, whatever the case, position or encoding.
        ("GET /api/v2/orders?apikey=K3y-123&orderNumber=1", "GET /api/v2/orders?apikey=***&orderNumber=1"),
        ("GET /api/v2/orders?orderNumber=1&APIKEY=K3y-123", "GET /api/v2/orders?orderNumber=1&APIKEY=***"),
        ("/x?api_key=a&Api-Key=b&key=c", "/x?api_key=***&Api-Key=***&key=***"),
        ("/x?token=a&access_token=b&client_secret=c", "/x?token=***&access_token=***&client_secret=***"),
        ("/x?password=a&passwd=b&secret=c&code=d", "/x?password=***&passwd=***&secret=***&code=***"),
        (
            "/b?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20250101&X-Amz-Security-Token=FwoG",
            "/b?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***&X-Amz-Security-Token=***",
        ),
        ("/b?X-Amz-Date=20250101T000000Z&X-Amz-Signature=0af1", "/b?X-Amz-Date=20250101T000000Z&X-Amz-Signature=***"),
        ("/b.pdf?Expires=1&Signature=abc~def&Key-Pair-Id=K1", "/b.pdf?Expires=1&Signature=***&Key-Pair-Id=K1"),
        ("next=%2Fx%3Fapikey%3DK3y%26a%3D1", "next=%2Fx%3Fapikey%3D***%26a%3D1"),
        ("next=%2Fx%3Fkey%3DK3y", "next=%2Fx%3Fkey%3D***"),
        ("https://x/cb#access_token=T0k&state=1", "https://x/cb#access_token=***&state=1"),
        ("the url was /orders?apikey=K3y", "the url was /orders?apikey=***"),
        # Azure: a SAS URL and connection strings.
        (
            "https://acct.blob.core.windows.net/c/a.pdf?sv=2022-11-02&se=2025&sr=b&sp=cw&sig=h5%2Bq%3D",
            "https://acct.blob.core.windows.net/c/a.pdf?sv=2022-11-02&se=2025&sr=b&sp=cw&sig=***",
        ),
        (
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=bXk+a2V5/w==;EndpointSuffix=core.windows.net",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***;EndpointSuffix=core.windows.net",
        ),
        (
            "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2022&ss=b&sig=h5%2B",
            "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=***",
        ),
        (
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=q1w2e3=",
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=***",
        ),
        ("Server=db;User Id=relay;Password=p&ss;Database=r", "Server=db;User Id=relay;Password=***;Database=r"),
        ("Server=db; Pwd=p&ss", "Server=db; Pwd=***"),
        # URLs with a password.
        ("sftp://ops:pw-S3cr3t!@sftp.example.com:22/in", "sftp://ops:***@sftp.example.com:22/in"),
        ("https://u:p@ss@host/p?email=a@b.c", "https://u:***@host/p?email=a@b.c"),
        ("postgresql+asyncpg://relay:pw@db/relay", "postgresql+asyncpg://relay:***@db/relay"),
        # Headers and bare scheme credentials, raw, in a repr, JSON-escaped.
        ("Authorization: Bearer eyJhbGciOi.J9x", "Authorization: Bearer ***"),
        ("authorization: basic dXNlcjpwYXNz", "authorization: basic ***"),
        ("{'Authorization': 'Bearer rr-K3y-123', 'Host': 'x'}", "{'Authorization': 'Bearer ***', 'Host': 'x'}"),
        ("[('Authorization', 'Bearer rr-K3y-123')]", "[('Authorization', 'Bearer ***')]"),
        ('{\\"Authorization\\": \\"Bearer rr-K3y-123\\"}', '{\\"Authorization\\": \\"Bearer ***\\"}'),
        ("X-Api-Key: rr-K3y-123", "X-Api-Key: ***"),
        ("retrying with Bearer rr-K3y-123 now", "retrying with Bearer *** now"),
        ("sent Basic dXNlcjpwYXNz=", "sent Basic ***"),
        # Quoted key-value pairs.
        ('{"password": "hunter 2", "user": "bob"}', '{"password": "***", "user": "bob"}'),
        ("{'client_secret': 'cs', 'id': 'x'}", "{'client_secret': '***', 'id': 'x'}"),
        # Zapier hook paths, plain, percent-encoded, alone.
        (
            "POST https://hooks.zapier.com/hooks/catch/123456/abcdef/ 410",
            "POST https://hooks.zapier.com/hooks/catch/*** 410",
        ),
        (
            "url=https%3A%2F%2Fhooks.zapier.com%2Fhooks%2Fcatch%2F123%2Fabc",
            "url=https%3A%2F%2Fhooks.zapier.com%2Fhooks%2Fcatch%2F***",
        ),
        ("path /HOOKS/catch/123/abc not found", "path /HOOKS/catch/*** not found"),
        # PEM private keys.
        (
            "key: -----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----\nnext",
            "key: ***\nnext",
        ),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE", "***"),
        # Several in one line.
        (
            "a?apikey=1&token=2 b sftp://u:3@h c Authorization: Bearer 44444444 d AccountKey=5;",
            "a?apikey=***&token=*** b sftp://u:***@h c Authorization: Bearer *** d AccountKey=***;",
        ),
    ],
)
def test_credentials_are_redacted(text: str, expected: str) -> None:
    assert redact_secrets(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "delivery d-1 attempt 2 to acme/zap: succeeded in 120 ms",
        "signature verified",
        "the signature check failed for bundle b-1",
        "GET https://example.com/api/v2/orders?orderNumber=1022&limit=10",
        "sftp://ops@sftp.example.com:22/in",
        "an API key is required (Authorization: Bearer or apikey=)",
        "Basic authentication failed; Bearer token missing",
        "object key=acme/bundles/1/ticket.pdf exit code=1",
        "if token == expected:",
        "token_type=bearer",
        "https://hooks.example.com/catch",
        '{"level": "INFO", "message": "delivery key d-1: hook answered 429", "trace_id": null}',
        "Münze Größe İstanbul password",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_secrets(text) == text


def test_a_json_log_line_stays_valid_json() -> None:
    record = {
        "message": 'GET /o?apikey=K3y\\x01 {\'Authorization\': "Bearer rr-K3y-123"} sftp://u:p"w@h',
        "exc_info": "Traceback\n  b'GET /o?token=T0k\"en HTTP/1.1'",
    }
    line = json.dumps(record)

    redacted = json.loads(redact_secrets(line))

    assert redacted["message"] == 'GET /o?apikey=***\\x01 {\'Authorization\': "Bearer ***"} sftp://u:p"w@h'
    assert redacted["exc_info"] == "Traceback\n  b'GET /o?token=***\"en HTTP/1.1'"


def test_text_whose_lowercase_is_longer_is_still_redacted() -> None:
    # "İ" lowercases to two characters: positions in the lowercased text are not the text's.
    assert redact_secrets("İİ GET /o?APIKEY=K3y&x=1 İ") == "İİ GET /o?APIKEY=***&x=1 İ"
    assert redact_secrets("İ Authorization: Bearer rr-K3y-123") == "İ Authorization: Bearer ***"
    assert redact_secrets("İ Basic authentication") == "İ Basic authentication"
