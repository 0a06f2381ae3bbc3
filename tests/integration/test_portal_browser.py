"""The Clients page in headless Chromium (Debian's, driven by Playwright), through the real
broker, the client directory on SQLite in dev mode, the notifier and an SMTP sink that keeps
files for the dev mail view. A screenshot of each step goes to test-artifacts/portal/.

Chromium comes from `apt-get install chromium` (.ci/run does it); Playwright's own browser
downloads are not used. Without Chromium these tests fail under CI=true; elsewhere they skip
and the end of the pytest run says so in a WARNING line (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.localbroker import LocalBroker, free_port
from deploy.smtp_sink import SinkHandler, start_sink
from tests.conftest import Publish, Stores, unique
from tests.harness import auth, client_directory, eventually, notifier, token

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google's hosts, which this
# kind of machine refuses; --no-sandbox because CI runs as root.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "portal"
VIEWPORT = {"width": 1280, "height": 900}
FILLERS = 50  # with the named clients, more than one page (50) on the All tab
# Connected clients with missing receipts: the fillers whose number is not a multiple of 3,
# Société Générale, Edgar Eriksen and Zoé Zola.
WITH_MISSING = sum(1 for n in range(FILLERS) if n % 3) + 3


def _browser_missing() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (make install)"
    if not Path(CHROMIUM).exists():
        return f"Chromium is not at {CHROMIUM}; install it with `apt-get install -y chromium` (.ci/run does)"
    return None


@pytest.fixture(scope="module")
def chromium_present() -> None:
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)


@pytest.fixture(scope="module")
async def browser(chromium_present: None) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright, expect

    # Generous: CI machines run the other suites beside this one.
    expect.set_options(timeout=15_000)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@dataclass
class Stack:
    base_url: str
    api: httpx.AsyncClient
    sink: SinkHandler
    mail_dir: Path


@pytest.fixture(scope="module")
async def stack(chromium_present: None, broker: LocalBroker, stores: Stores,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """client_directory in dev mode (its /dev/mail reads our sink's folder) and the notifier,
    sending to that sink."""
    mail_dir = tmp_path_factory.mktemp("mail")
    smtp_port = free_port()
    controller, sink = start_sink(smtp_port, mail_dir)
    try:
        async with client_directory(broker.bootstrap, stores.new("sqlite"), dev_mode=True,
                                    dev_mail_dir=str(mail_dir)) as (_, api), \
                notifier(broker.bootstrap, stores.new("sqlite"), smtp_port):
            yield Stack(str(api.base_url).rstrip("/"), api, sink, mail_dir)
    finally:
        controller.stop()


@dataclass
class Firm:
    id: str
    admin: str
    accountant: str  # Chloé, French
    other: str
    clients: dict[str, str] = field(default_factory=dict)  # name -> client_id

    def email(self, user: str) -> str:
        return f"{user}@firm.test"


async def seed(publish: Publish, api: httpx.AsyncClient) -> Firm:
    """A firm with every tab filled, through the broker; returns once the page would show it."""
    firm = Firm(unique("firm"), unique("admin"), unique("chloe"), unique("otto"))
    members = ((firm.admin, "Ada Admin", "admin", "en"), (firm.accountant, "Chloé Comptable", "accountant", "fr"),
               (firm.other, "Otto Other", "accountant", "en"))
    for user, name, role, locale in members:
        publish("platform.partner-members", "partner.member.added.v1", firm.id,
                {"user_id": user, "email": firm.email(user), "name": name, "role": role, "locale": locale},
                flush=False)

    def client(name: str, kind: str, *, accountants: tuple[str, ...] = (), missing: int = 0,
               then: str | None = None) -> None:
        client_id = unique("client")
        firm.clients[name] = client_id
        data: dict[str, Any] = {"client_id": client_id, "client_name": name}
        if kind == "client.onboarding_started.v1":
            data["invited_by"] = firm.admin
        publish("platform.partner-clients", kind, firm.id, data, flush=False)
        for user in accountants:
            publish("platform.partner-clients", "client.accountant_assigned.v1", firm.id,
                    {"client_id": client_id, "user_id": user}, flush=False)
        if then == "failed":
            publish("platform.partner-clients", "client.verification_failed.v1", firm.id,
                    {"client_id": client_id, "reason": "document_unreadable"}, flush=False)
        elif then == "connected":
            publish("platform.partner-clients", "client.verification_completed.v1", firm.id,
                    {"client_id": client_id}, flush=False)
        publish("platform.client-metrics", "client.metrics_updated.v1", firm.id,
                {"client_id": client_id, "wallet_balance": {"amount": "1234.50", "currency": "EUR"},
                 "missing_receipts": missing, "ready_to_export": 3, "as_of": "2026-11-27T10:00:00+00:00"},
                flush=False)

    invited, onboarding = "client.partner_invited.v1", "client.onboarding_started.v1"
    client("Brasserie Zoé", invited)
    client("Atelier Ørsted", invited)
    client("Crème & Cacao", onboarding, accountants=(firm.accountant,))
    client("Garage Müller", onboarding, accountants=(firm.other,), then="failed")
    client("Société Générale", onboarding, accountants=(firm.accountant,), missing=7, then="connected")
    client("Élodie Café", onboarding, accountants=(firm.accountant,), then="connected")
    client("Edgar Eriksen", onboarding, accountants=(firm.other,), missing=2, then="connected")
    client("Fabrice Fournier", onboarding, then="connected")
    client("Zoé Zola", onboarding, accountants=(firm.admin,), missing=1, then="connected")
    client("Ærø Bryggeri", onboarding, accountants=(firm.other,), then="connected")
    for n in range(FILLERS):
        client(f"Lambert Conseil {n:02d}", onboarding, accountants=(firm.other,), missing=n % 3, then="connected")
    publish("platform.partner-members", "partner.member.added.v1", firm.id,
            {"user_id": firm.admin, "email": firm.email(firm.admin), "name": "Ada Admin", "role": "admin",
             "locale": "en"})  # flushes everything above

    connected = 6 + FILLERS

    async def shown() -> bool:
        response = await api.get("/v1/clients", params={"tab": "all", "limit": 1},
                                 headers=auth(firm.admin, firm.id, "admin"))
        counts = {t["id"]: t["count"] for t in response.json().get("tabs", [])}
        mine = await api.get("/v1/clients", params={"tab": "mine", "limit": 1},
                             headers=auth(firm.accountant, firm.id, "accountant"))
        ready = mine.json().get("tabs") == [{"id": "onboarding", "count": 1}, {"id": "mine", "count": 2}]
        # Figures come on their own topic: wait for them too.
        missing = await api.get("/v1/clients", params={"tab": "all", "limit": 200, "missing_receipts": "true"},
                                headers=auth(firm.admin, firm.id, "admin"))
        ready = ready and len(missing.json().get("items", [])) == WITH_MISSING
        return ready and counts == {"invitations": 2, "onboarding": 2, "mine": 1, "all": connected}

    await eventually(shown, timeout=60)
    return firm


@pytest.fixture
async def firm(stack: Stack, publish: Publish) -> Firm:
    return await seed(publish, stack.api)


Page = Any  # playwright.async_api.Page, imported lazily (the module must load without it)


@pytest.fixture
async def open_page(browser: Any, stack: Stack) -> AsyncIterator[Callable[..., Awaitable[Page]]]:
    """open_page(locale="en-GB") -> a fresh page (own storage) on /portal; fails the test on
    any JavaScript error the page raised."""
    contexts: list[Any] = []
    errors: list[str] = []

    async def make(locale: str = "en-GB") -> Page:
        context = await browser.new_context(viewport=VIEWPORT, locale=locale, base_url=stack.base_url)
        contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda error: errors.append(f"{error}\n{error.stack}"))
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        await page.goto("/portal")
        return page

    yield make
    for context in contexts:
        with contextlib.suppress(Exception):
            await context.close()
    assert errors == [], f"the page raised JavaScript errors: {errors}"  # e.g. a 404 of an asset


async def shot(page: Page, name: str) -> None:
    """A screenshot of the top of the page (where the tabs and the first rows are)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


async def sign_in(page: Page, firm: Firm, user: str) -> None:
    """Dev mode's picker: the firm, then the member; the page mints a token and shows the tabs."""
    from playwright.async_api import expect

    await expect(page.locator("#dev-picker")).to_be_visible()
    await page.select_option("#firm-select", firm.id)
    await page.click(f'.member[data-user-id="{user}"]')
    await expect(page.locator("#clients-page")).to_be_visible()
    await expect(page.locator("#rows tr").first).to_be_visible()


def tab(page: Page, tab_id: str) -> Any:
    return page.locator(f'#tabs [role="tab"][data-tab="{tab_id}"]')


def row(page: Page, name: str) -> Any:
    exactly = re.compile(f"^{re.escape(name)}$")
    return page.locator("#rows tr").filter(has=page.locator(".client-name", has_text=exactly))


async def names(page: Page) -> list[str]:
    return [str(n) for n in await page.locator("#rows .client-name").all_text_contents()]


async def test_an_admin_sees_four_tabs_accepts_an_invitation_and_the_invitations_tab_disappears(
        open_page: Callable[..., Awaitable[Page]], firm: Firm) -> None:
    from playwright.async_api import expect

    page = await open_page()
    await shot(page, "00-dev-member-picker")
    await sign_in(page, firm, firm.admin)
    tabs = page.locator('#tabs [role="tab"]')
    await expect(tabs).to_have_count(4)
    await expect(tabs.locator(".tab-label")).to_have_text(["Invitations", "Onboarding", "My clients", "All"])
    await expect(tabs.locator(".count")).to_have_text(["2", "2", "1", "56"])
    await expect(page.locator("#who-name")).to_have_text("Ada Admin")
    await shot(page, "01-admin-four-tabs")

    await tab(page, "invitations").click()
    await expect(page.locator("#rows .client-name")).to_have_text(["Atelier Ørsted", "Brasserie Zoé"])
    await shot(page, "02-admin-invitations")

    await row(page, "Brasserie Zoé").locator('[data-action="accept"]').click()
    await expect(page.locator(".toast", has_text="Brasserie Zoé is now connected")).to_be_visible()
    await expect(tab(page, "invitations").locator(".count")).to_have_text("1")
    await expect(page.locator("#rows .client-name")).to_have_text(["Atelier Ørsted"])
    await shot(page, "03-admin-invitation-accepted")

    await row(page, "Atelier Ørsted").locator('[data-action="decline"]').click()
    await expect(page.locator("#confirm-dialog")).to_be_visible()
    await shot(page, "04-admin-confirm-decline")
    await page.click("#confirm-yes")

    # The last invitation answered: the tab is gone and the page moved to My clients.
    await expect(tabs).to_have_count(3)
    await expect(tab(page, "invitations")).to_have_count(0)
    await expect(tab(page, "mine")).to_have_attribute("aria-selected", "true")
    await expect(tab(page, "all").locator(".count")).to_have_text("57")
    await tab(page, "all").click()
    await page.fill("#search", "brasserie")
    await expect(page.locator("#rows .client-name")).to_have_text(["Brasserie Zoé"])
    await shot(page, "05-admin-invitations-tab-gone")


async def test_search_finds_societe_generale_and_sorting_flips_the_order(
        open_page: Callable[..., Awaitable[Page]], firm: Firm) -> None:
    from playwright.async_api import expect

    page = await open_page()
    await sign_in(page, firm, firm.admin)
    await tab(page, "all").click()
    await expect(tab(page, "all")).to_have_attribute("aria-selected", "true")
    rows = page.locator("#rows tr")
    await expect(rows).to_have_count(50)
    await expect(page.locator("#shown")).to_have_text("Showing 50 of 56")

    await page.fill("#search", "societe")
    await expect(page.locator("#rows .client-name")).to_have_text(["Société Générale"])
    await expect(row(page, "Société Générale").locator(".accountants")).to_have_text("Chloé Comptable")
    await shot(page, "06-search-societe")

    await page.fill("#search", "")
    await expect(rows).to_have_count(50)
    await page.click("#load-more")  # cursor pagination: the remaining 6
    await expect(rows).to_have_count(56)
    await expect(page.locator("#load-more")).to_be_hidden()
    ascending = await names(page)
    assert ascending.index("Edgar Eriksen") < ascending.index("Élodie Café") < ascending.index("Fabrice Fournier")

    await page.select_option("#sort", "-name")
    await expect(rows).to_have_count(50)
    await expect(page.locator("#rows .client-name")).to_have_text(list(reversed(ascending))[:50])
    await shot(page, "07-sorted-z-to-a")
    await page.select_option("#sort", "name")
    await expect(page.locator("#rows .client-name")).to_have_text(ascending[:50])

    await page.check("#missing-filter")
    await expect(rows).to_have_count(WITH_MISSING)
    missing = [int(v) for v in await page.locator("#rows td.missing").all_text_contents()]
    assert all(v > 0 for v in missing)
    assert "Élodie Café" not in await names(page)  # none missing: filtered out
    await shot(page, "08-missing-receipts-filter")


async def test_notify_accountants_sends_an_email_that_the_dev_mail_view_shows(
        open_page: Callable[..., Awaitable[Page]], firm: Firm, stack: Stack) -> None:
    from playwright.async_api import expect

    page = await open_page()
    await sign_in(page, firm, firm.admin)
    await tab(page, "all").click()
    await page.fill("#search", "societe")
    await expect(page.locator("#rows .client-name")).to_have_text(["Société Générale"])

    # Go to client: the page asks /go and opens the link it answers.
    client_id = firm.clients["Société Générale"]
    await page.context.route("https://portal.test/**", lambda route: route.fulfill(
        body="<h1>The client's account</h1>", content_type="text/html"))
    await row(page, "Société Générale").locator(".dots").click()
    await expect(page.locator("#row-menu button:visible")).to_have_text(
        ["Go to client", "View details", "Notify accountants"])
    await shot(page, "09-three-dots-menu")
    async with page.context.expect_page() as opened:
        await page.click('#row-menu [data-action="go"]')
    popup = await opened.value
    await popup.wait_for_url(f"https://portal.test/clients/{client_id}/account")
    await popup.close()

    # View details: the Email box and the frequency, saved through PUT /notifications.
    await row(page, "Société Générale").locator(".dots").click()
    await page.click('#row-menu [data-action="details"]')
    dialog = page.locator("#details-dialog")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#email-enabled")).not_to_be_checked()
    await page.check("#email-enabled")
    await page.select_option("#frequency", "monthly")
    await shot(page, "10-view-details")
    await page.click("#save-details")
    await expect(dialog).to_be_hidden()
    details = await stack.api.get(f"/v1/clients/{client_id}", headers=auth(firm.admin, firm.id, "admin"))
    notifications = details.json()["notifications"]
    assert (notifications["email_enabled"], notifications["frequency"]) == (True, "monthly")
    assert notifications["next_digest_at"]  # the first Monday 10:00 after the choice

    # Notify accountants: tasks and a comment; the one accountant assigned gets the email.
    await row(page, "Société Générale").locator(".dots").click()
    await page.click('#row-menu [data-action="notify"]')
    await expect(page.locator("#notify-dialog")).to_be_visible()
    await expect(page.locator("#notify-recipients")).to_contain_text("Chloé Comptable")
    await expect(page.locator("#send-reminder")).to_be_disabled()
    await page.check('#notify-form input[value="missing_receipts"]')
    await page.check('#notify-form input[value="wallet_balance"]')
    await page.fill("#comment", "Merci de regarder les reçus avant vendredi.")
    await shot(page, "11-notify-accountants")
    await page.click("#send-reminder")
    await expect(page.locator("#notify-dialog")).to_be_hidden()
    await expect(page.locator(".toast", has_text="The accountants of Société Générale will receive an email")
                 ).to_be_visible()

    chloe = firm.email(firm.accountant)
    await asyncio.to_thread(stack.sink.wait_for, lambda _: bool(stack.sink.to(chloe)), 30.0)
    assert stack.sink.to(firm.email(firm.other)) == []

    await page.goto("/dev/mail")
    mail = page.locator(".mail").filter(has=page.locator(".mail-to", has_text=chloe))
    await expect(mail).to_have_count(1)
    await expect(mail.locator("h2")).to_contain_text("Société Générale")
    await expect(mail.locator(".mail-text")).to_contain_text("Merci de regarder les reçus avant vendredi.")
    await expect(mail.locator(".mail-text")).to_contain_text("Ada Admin")
    await shot(page, "12-dev-mail-view")


async def test_an_accountant_sees_only_onboarding_and_my_clients_in_french(
        open_page: Callable[..., Awaitable[Page]], firm: Firm) -> None:
    from playwright.async_api import expect

    page = await open_page(locale="fr-FR")  # the browser's language picks French
    await expect(page.locator("#sign-in-title")).to_have_text("Connexion au portail des partenaires")
    await sign_in(page, firm, firm.accountant)
    tabs = page.locator('#tabs [role="tab"]')
    await expect(tabs.locator(".tab-label")).to_have_text(["Intégration", "Mes clients"])
    await expect(tabs.locator(".count")).to_have_text(["1", "2"])
    await expect(page.locator("#search")).to_have_attribute("placeholder", "Rechercher des clients")
    await expect(page.locator("#rows .client-name")).to_have_text(["Élodie Café", "Société Générale"])
    await shot(page, "13-accountant-fr-mes-clients")

    # Neither Notify accountants nor Accept is an accountant's; leaving a client they keep is.
    await row(page, "Société Générale").locator(".dots").click()
    await expect(page.locator("#row-menu button:visible")).to_have_text(
        ["Aller vers le client", "Afficher les détails", "Vous désassigner du client"])
    await shot(page, "14-accountant-fr-menu")
    await page.keyboard.press("Escape")

    await tab(page, "onboarding").click()
    await expect(page.locator("#rows .client-name")).to_have_text(["Crème & Cacao"])
    await expect(page.locator("#rows .status")).to_have_text(["Intégration en cours"])
    await row(page, "Crème & Cacao").locator(".dots").click()
    await expect(page.locator("#row-menu button:visible")).to_have_text(["Afficher les détails"])
    await page.keyboard.press("Escape")
    await shot(page, "15-accountant-fr-integration")

    # The language switch wins over the browser's.
    await page.select_option("#lang", "en")
    await expect(tabs.locator(".tab-label")).to_have_text(["Onboarding", "My clients"])
    await expect(page.locator("html")).to_have_attribute("lang", "en")


async def test_a_token_in_the_link_signs_in_and_keeps_the_view_it_names(
        open_page: Callable[..., Awaitable[Page]], firm: Firm) -> None:
    """What a platform sign-in would hand over (no picker): /portal#token=...; the token leaves
    the address bar, the rest of the fragment (tab, search) is the view."""
    from playwright.async_api import expect

    page = await open_page()
    await page.goto(f"/portal#token={token(firm.other, firm.id, 'accountant')}&tab=onboarding")
    await expect(page.locator("#clients-page")).to_be_visible()
    await expect(tab(page, "onboarding")).to_have_attribute("aria-selected", "true")
    await expect(page.locator("#rows .client-name")).to_have_text(["Garage Müller"])
    await expect(page.locator("#rows .status")).to_have_text(["Verification failed"])
    await expect(page.locator("#who-name")).to_have_text(firm.other)  # no picker: the token's sub
    assert "token=" not in page.url and page.url.endswith("#tab=onboarding")
    await shot(page, "16-token-link-verification-failed")

    await page.click("#switch-member")  # signs out: the picker again, and the token is gone
    await expect(page.locator("#dev-picker")).to_be_visible()
    assert await page.evaluate("localStorage.getItem('portal.token')") is None
