"""The Clients page's server side: the static page and its headers, dev mode's rule (SQLite
and loopback only), and the dev routes (member picker, token, mail view), which must not exist
outside dev mode. The page itself is tested in a browser (tests/integration/test_portal_browser.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import jwt
import pytest
from fastapi import FastAPI

from events.config import ConfigError, KafkaSettings, StoreUrl
from services.client_directory.adapters.portal import mount_portal
from services.client_directory.adapters.portal.dev import read_mail
from services.client_directory.bootstrap import bootstrap as build
from services.client_directory.config import Settings
from tests.client_directory.support import Directory, member_added, member_removed

SECRET = "portal-test-secret-long-enough-for-hs256!"


def settings(tmp_path: Path, **overrides: object) -> Settings:
    fields: dict[str, object] = {
        "kafka": KafkaSettings("127.0.0.1:1"), "http_host": "127.0.0.1", "http_port": 8000,
        "store": StoreUrl.parse("CLIENT_DIRECTORY_DB", f"sqlite:///{tmp_path / 'cd.db'}"),
        "jwt_secret": SECRET, "portal_base_url": "https://portal.test",
    }
    fields.update(overrides)
    return Settings(**fields)  # type: ignore[arg-type]


def get(app: FastAPI, method: str, path: str, **kwargs: object) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.request(method, path, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(call())


# --- configuration ------------------------------------------------------------------------------

def test_dev_mode_is_read_from_the_environment_and_allowed_on_sqlite_and_loopback() -> None:
    on = Settings.from_env({"PORTAL_DEV_MODE": "true", "PORTAL_DEV_MAIL_DIR": "/tmp/mail"})
    assert on.dev_mode and on.dev_mail_dir == "/tmp/mail"
    assert Settings.from_env({"PORTAL_JWT_SECRET": SECRET}).dev_mode is False
    assert Settings.from_env({"PORTAL_JWT_SECRET": SECRET}).dev_mail_dir == "var/mail"
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert Settings.from_env({"PORTAL_DEV_MODE": "1", "CLIENT_DIRECTORY_HTTP_HOST": host}).dev_mode


@pytest.mark.parametrize("env", [
    {"CLIENT_DIRECTORY_HTTP_HOST": "0.0.0.0"},
    {"CLIENT_DIRECTORY_HTTP_HOST": "10.1.2.3"},
    {"CLIENT_DIRECTORY_HTTP_HOST": "portal.example.com"},
    {"CLIENT_DIRECTORY_DB": "postgresql://cd:secret@127.0.0.1:5432/cd"},
])
def test_dev_mode_is_refused_on_postgresql_or_a_reachable_address_with_one_line(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"PORTAL_DEV_MODE": "true", **env})
    message = str(refused.value)
    assert "PORTAL_DEV_MODE" in message and "\n" not in message
    # The same setup without dev mode is fine, given a secret of its own.
    Settings.from_env({"PORTAL_DEV_MODE": "false", "PORTAL_JWT_SECRET": SECRET, **env})


def test_a_dev_mode_value_that_is_not_a_boolean_is_refused() -> None:
    with pytest.raises(ConfigError, match="PORTAL_DEV_MODE"):
        Settings.from_env({"PORTAL_DEV_MODE": "maybe"})


# --- the page, with and without dev mode --------------------------------------------------------

@pytest.fixture
def service_app(tmp_path: Path) -> Iterator[FastAPI]:
    """The whole service's API as `python -m services.client_directory` builds it, not in dev mode."""
    service = build(settings(tmp_path))
    yield service.api
    service.directory.close()


def test_the_page_and_its_assets_are_served_with_a_strict_content_security_policy(service_app: FastAPI) -> None:
    page = get(service_app, "GET", "/portal")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert '<script src="/portal/static/app.js"' in page.text
    for asset, kind in (("app.js", "javascript"), ("i18n.js", "javascript"), ("app.css", "text/css")):
        response = get(service_app, "GET", f"/portal/static/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert response.headers["cache-control"] == "no-cache"
    assert get(service_app, "GET", "/portal/static/nothing.js").status_code == 404
    assert get(service_app, "GET", "/").headers["location"] == "/portal"
    assert get(service_app, "GET", "/portal/config.json").json() == {"dev_mode": False}


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/dev/members"), ("POST", "/dev/token"), ("GET", "/dev/mail"), ("GET", "/dev/mail/x.eml/html"),
])
def test_outside_dev_mode_the_dev_routes_do_not_exist(service_app: FastAPI, method: str, path: str) -> None:
    response = get(service_app, method, path, json={"partner_id": "f", "user_id": "u"})
    assert response.status_code == 404
    assert "/dev/" not in str(get(service_app, "GET", "/openapi.json").json()["paths"])


def test_the_page_calls_only_the_public_api_and_the_dev_routes() -> None:
    static = Path(__file__).resolve().parents[2] / "services/client_directory/adapters/portal/static"
    script = (static / "app.js").read_text()
    paths = set(re.findall(r'["`](/[a-z][^"`]*)', script))
    assert paths, "no path found in app.js"
    assert all(p.startswith(("/v1/", "/dev/", "/portal")) for p in paths), paths
    assert "innerHTML" not in script  # names from the API are inserted as text only


# --- dev mode -----------------------------------------------------------------------------------

@pytest.fixture
def dev(directory: Directory, tmp_path: Path) -> tuple[FastAPI, Directory, Path]:
    mail = tmp_path / "mail"
    app = FastAPI()
    mount_portal(app, settings(tmp_path, dev_mode=True, dev_mail_dir=str(mail)), directory.read_model)
    return app, directory, mail


def test_dev_members_lists_each_firms_active_members_admins_first_then_by_name(
        dev: tuple[FastAPI, Directory, Path]) -> None:
    app, directory, _ = dev
    directory.send(
        member_added("firm-b", "fabrice", "Fabrice"),
        member_added("firm-a", "zed", "Zed Admin", role="admin"),
        member_added("firm-a", "fabrice", "Fabrice Fournier"),
        member_added("firm-a", "elodie", "Élodie Martin"),
        member_added("firm-a", "edgar", "Edgar Eriksen"),
        member_added("firm-a", "gone", "Gone Member"),
        member_removed("firm-a", "gone"),
    )
    directory.projection.catch_up()
    firms = get(app, "GET", "/dev/members").json()["firms"]
    assert [f["partner_id"] for f in firms] == ["firm-a", "firm-b"]
    assert [m["name"] for m in firms[0]["members"]] == ["Zed Admin", "Edgar Eriksen", "Élodie Martin",
                                                         "Fabrice Fournier"]
    assert firms[0]["members"][0] == {"user_id": "zed", "name": "Zed Admin", "email": "zed@firm.test",
                                      "role": "admin", "locale": "fr"}
    assert get(app, "GET", "/portal/config.json").json() == {"dev_mode": True}


def test_dev_token_carries_the_members_current_role_and_refuses_strangers(
        dev: tuple[FastAPI, Directory, Path]) -> None:
    app, directory, _ = dev
    directory.send(member_added("firm-a", "ada", "Ada", role="admin"), member_added("firm-a", "gone", "Gone"),
                   member_removed("firm-a", "gone"))
    directory.projection.catch_up()
    minted = get(app, "POST", "/dev/token", json={"partner_id": "firm-a", "user_id": "ada"})
    assert minted.status_code == 200
    claims = jwt.decode(minted.json()["token"], SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["partner_id"], claims["role"]) == ("ada", "firm-a", "admin")
    assert minted.json()["name"] == "Ada"
    for who in ({"partner_id": "firm-b", "user_id": "ada"}, {"partner_id": "firm-a", "user_id": "gone"},
                {"partner_id": "firm-a", "user_id": "nobody"}):
        assert get(app, "POST", "/dev/token", json=who).status_code == 404
    assert get(app, "POST", "/dev/token", json={"partner_id": "", "user_id": "ada"}).status_code == 422


def write_mail(folder: Path, name: str, subject: str, to: str, text: str, html: str | None = None) -> None:
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = subject, "Ada <no-reply@portal.test>", to
    message["Date"] = "Mon, 07 Dec 2026 10:00:00 +0100"
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(bytes(message))


def test_dev_mail_shows_subject_recipient_date_and_text_newest_first_as_escaped_text(
        dev: tuple[FastAPI, Directory, Path]) -> None:
    app, _, mail = dev
    assert "No mail" in get(app, "GET", "/dev/mail").text  # the folder does not exist yet
    write_mail(mail, "20261207T100000-000000.eml", "Rappel : Société Générale", "Chloé <chloe@firm.test>",
               "Reçus manquants : 7\n<b>not bold</b>", html="<p>Reçus <script>alert(1)</script></p>")
    write_mail(mail, "20261207T100001-000001.eml", "<script>alert('x')</script>", "otto@firm.test", "second")
    page = get(app, "GET", "/dev/mail")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "Rappel : Société Générale" in page.text and "chloe@firm.test" in page.text
    assert "Reçus manquants : 7" in page.text and "Mon, 07 Dec 2026 10:00:00 +0100" in page.text
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    assert "&lt;b&gt;not bold&lt;/b&gt;" in page.text
    mails = read_mail(mail)
    assert [m["file"] for m in mails] == ["20261207T100001-000001.eml", "20261207T100000-000000.eml"]
    assert [m["has_html"] for m in mails] == [False, True]


def test_a_mails_html_part_is_served_sandboxed_and_only_from_the_mail_folder(
        dev: tuple[FastAPI, Directory, Path]) -> None:
    app, _, mail = dev
    write_mail(mail, "20261207T100000-000000.eml", "Hello", "a@firm.test", "text", html="<p>Hello</p>")
    write_mail(mail, "20261207T100001-000001.eml", "Plain", "a@firm.test", "text")
    shown = get(app, "GET", "/dev/mail/20261207T100000-000000.eml/html")
    assert shown.status_code == 200 and "<p>Hello</p>" in shown.text
    assert shown.headers["content-security-policy"] == "sandbox"
    assert get(app, "GET", "/dev/mail/20261207T100001-000001.eml/html").status_code == 404  # no HTML part
    (mail.parent / "secret.eml").write_text("Subject: secret\n\nno")
    for name in ("..%2Fsecret.eml", "missing.eml", "notes.txt"):
        assert get(app, "GET", f"/dev/mail/{name}/html").status_code == 404
