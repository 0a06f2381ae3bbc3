"""Under `make run` (dev mode) the links into the platform land on a stand-in page: Go to
client and every portal link of the emails, on the same PORTAL_BASE_URL. Outside dev mode the
stand-in does not exist."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from services.notifier.emails import ClientFigures, Money, Recipient, render_digest, render_reminder
from tests.client_directory.support import connected, member_added
from tests.client_directory.test_security import Portal, bearer

BASE = "http://127.0.0.1:8000"


def portal_with(tmp_path: Path, dev_mode: bool) -> Portal:
    made = Portal(tmp_path, dev_mode=dev_mode, portal_base_url=BASE, dev_mail_dir=str(tmp_path / "mail"))
    f = made.firm
    made.send(member_added(f, "ada", "Ada", role="admin"), connected(f, "c-ero", "Ærø Bryggeri"),
              connected(f, "c-odd", "<b>Odd</b> & Co"))
    return made


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Portal]:
    made = portal_with(tmp_path, dev_mode=True)
    yield made
    made.facts.app.close()


def links(html: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', html)


def test_go_to_client_lands_on_a_stand_in_naming_the_client_in_dev_mode(dev: Portal) -> None:
    go = dev.http.get("/v1/clients/c-ero/go", headers=bearer("ada", dev.firm, "admin")).json()["url"]
    assert go == f"{BASE}/clients/c-ero/account"
    page = dev.http.get(urlsplit(go).path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Ærø Bryggeri" in page.text and "where the platform's client account" in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script
    odd = dev.http.get("/clients/c-odd/account").text
    assert "&lt;b&gt;Odd&lt;/b&gt; &amp; Co" in odd and "<b>Odd</b>" not in odd
    assert dev.http.get("/clients/nobody/account").status_code == 404


def test_every_portal_link_of_the_emails_lands_somewhere_in_dev_mode(dev: Portal) -> None:
    figures = ClientFigures(client_id="c-ero", name="Ærø Bryggeri", wallet_balance=Money(Decimal("1"), "DKK"))
    due = datetime(2026, 12, 7, 9, tzinfo=UTC)
    for locale in ("en", "fr"):
        who = Recipient(user_id="ada", email="ada@firm.test", name="Ada", locale=locale)
        mails = [
            render_digest(recipient=who, clients=[figures], due_at=due, mail_from="Portal <noreply@portal.test>",
                          base_url=BASE, unsubscribe_url="http://127.0.0.1:8001/unsubscribe/t"),
            render_reminder(recipient=who, sender_name="Ada", client=figures, tasks=["wallet_balance"], comment="",
                            reminder_id="r-1", mail_from="Portal <noreply@portal.test>", base_url=BASE),
        ]
        for mail in mails:
            html = mail.get_body(("html",))
            assert html is not None
            # The notifier's own unsubscribe links are served by the notifier, not here.
            portal_links = [u for u in links(html.get_content()) if u.startswith(BASE)]
            assert portal_links, "no portal link in the email"
            for url in portal_links:
                response = dev.http.get(urlsplit(url).path)
                if response.status_code in (302, 303, 307):
                    response = dev.http.get(response.headers["location"])
                assert response.status_code == 200, url


def test_outside_dev_mode_the_stand_in_does_not_exist(tmp_path: Path) -> None:
    made = portal_with(tmp_path, dev_mode=False)
    try:
        assert made.http.get("/clients/c-ero/account").status_code == 404
        assert made.http.get("/clients").status_code == 404
    finally:
        made.facts.app.close()
