"""``relay dev`` generates the shared secrets the services require, keeps them in ``var/dev`` (owner-only) across
restarts, and hands the same association-store token to both ends."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from relay_cli.dev import DevStack
from relay_platform.shared_secret import secret_problem

ROOT = Path(__file__).resolve().parents[3]


class QuietStack(DevStack):
    def say(self, source: str, line: str, colour: str = "1") -> None:
        pass


@pytest.fixture(autouse=True)
def no_secrets_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LINKS_SIGNING_KEY", "ASSOCIATION_STORE_API_TOKEN", "INGEST_API_ASSOCIATION_STORE_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def _environment(var: Path) -> dict[str, str]:
    return QuietStack(root=ROOT, var=var).environment("127.0.0.1:9092")


def test_secrets_are_generated_strong_owner_only_and_kept_across_restarts(tmp_path: Path) -> None:
    first = _environment(tmp_path)
    key, token = first["LINKS_SIGNING_KEY"], first["ASSOCIATION_STORE_API_TOKEN"]
    assert secret_problem(key) is None
    assert secret_problem(token) is None
    assert key != token
    assert first["INGEST_API_ASSOCIATION_STORE_TOKEN"] == token
    for name, value in (("link-signing-key", key), ("association-store-token", token)):
        path = tmp_path / "dev" / name
        assert path.read_text() == value
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = _environment(tmp_path)
    assert (second["LINKS_SIGNING_KEY"], second["ASSOCIATION_STORE_API_TOKEN"]) == (key, token)


def test_a_stored_key_the_services_would_refuse_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "link-signing-key").write_text("dev-only-signing-key-change-me")
    key = _environment(tmp_path)["LINKS_SIGNING_KEY"]
    assert secret_problem(key) is None
    assert (tmp_path / "dev" / "link-signing-key").read_text() == key


def test_secrets_set_in_the_environment_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, token = "k" + "0123456789abcdef" * 3, "t" + "fedcba9876543210" * 3
    monkeypatch.setenv("LINKS_SIGNING_KEY", key)
    monkeypatch.setenv("ASSOCIATION_STORE_API_TOKEN", token)
    env = _environment(tmp_path)
    assert (env["LINKS_SIGNING_KEY"], env["ASSOCIATION_STORE_API_TOKEN"]) == (key, token)
    assert env["INGEST_API_ASSOCIATION_STORE_TOKEN"] == token
    assert not (tmp_path / "dev" / "link-signing-key").exists()
