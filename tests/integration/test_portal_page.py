"""The Clients page as a person meets it (issue 17), in headless Chromium through the same
stack as test_portal_browser.py (real broker, client_directory in dev mode, notifier): phone,
tablet and desktop widths, loading/error/offline states with Retry, keyboard use of the tabs,
the ⋯ menu and the dialogs, an axe-core check, French texts and the one format per language,
and the footer's total.

Failures of /v1/clients are made with Playwright's page.route (delay, 500, 503, abort) and
context.set_offline; screenshots go to var/test-artifacts/portal/ (the paths are printed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration import test_portal_browser as base
from tests.integration.test_portal_browser import Firm, Page, Stack, row, sign_in, tab

# The stack and the seeded firm of test_portal_browser.py (fixtures are found by name here).
browser = base.browser
chromium_present = base.chromium_present
stack = base.stack
firm = base.firm

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "portal"
WIDTHS = (390, 768, 1280)
LIST = re.compile(r"/v1/clients\?")  # the list request, not /v1/clients/{id}
DETAILS = re.compile(r"/v1/clients/[^/?]+$")  # GET /v1/clients/{id}
NBSP_LIKE = re.compile("[\u00a0\u202f]")
# Chromium logs each failed request ("Failed to load resource: ... 500") as a console error:
# expected in the tests that make requests fail, nothing else is.
FAILED_LOAD = re.compile(r"^Failed to load resource")

OpenPage = Callable[..., Awaitable[Page]]


@pytest.fixture
async def open_page(browser: Any, stack: Stack) -> AsyncIterator[OpenPage]:
    """open_page(locale="en-GB", width=1280, failed_loads_expected=False) -> a fresh page (own
    storage) on /portal; any JavaScript error fails the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    async def make(locale: str = "en-GB", width: int = 1280, failed_loads_expected: bool = False) -> Page:
        context = await browser.new_context(viewport={"width": width, "height": 900}, locale=locale,
                                            base_url=stack.base_url)
        contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda error: errors.append(f"{error}\n{error.stack}"))

        def console(message: Any) -> None:
            if message.type == "error" and not (failed_loads_expected and FAILED_LOAD.match(message.text)):
                errors.append(message.text)

        page.on("console", console)
        await page.goto("/portal")
        return page

    yield make
    for context in contexts:
        with contextlib.suppress(Exception):
            await context.close()
    assert errors == [], f"the page raised JavaScript errors: {errors}"


async def shot(page: Page, name: str, *, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")
    return path


def spaces(text: str) -> str:
    """Intl puts no-break spaces (U+00A0, U+202F) in numbers: compare them as spaces."""
    return NBSP_LIKE.sub(" ", text)


async def focused(page: Page) -> dict[str, Any]:
    return dict(await page.evaluate("""() => {
        const node = document.activeElement;
        return { id: node.id, text: node.textContent.trim(), label: node.getAttribute("aria-label"),
                 dialog: node.closest("dialog")?.id ?? null, menu: Boolean(node.closest("#row-menu")) };
    }"""))


# --- 1. responsive ----------------------------------------------------------------------------

OVERFLOW = """() => {
    const width = window.innerWidth;
    const outside = (node) => {
        const r = node.getBoundingClientRect();
        return r.width > 0 && (r.left < -0.5 || r.right > width + 0.5);
    };
    const describe = (node) =>
        `${node.tagName.toLowerCase()}.${node.className} ${node.textContent.trim().slice(0, 40)}`;
    const checked = document.querySelectorAll(".topbar, .topbar > *, #tabs [role=tab], .toolbar > *, "
        + "#rows tr, #rows td, #rows .dots, #rows button, .list-foot > *");
    return {
        scrollWidth: document.documentElement.scrollWidth, innerWidth: width,
        outside: Array.from(checked).filter(outside).map(describe),
        clipped: Array.from(document.querySelectorAll("#rows td, .topbar > *"))
            .filter((node) => node.scrollWidth > node.clientWidth + 1 && getComputedStyle(node).overflowX !== "visible")
            .map(describe),
        dots: document.querySelectorAll("#rows .dots").length,
    };
}"""


async def assert_fits(page: Page, width: int) -> None:
    layout = await page.evaluate(OVERFLOW)
    assert layout["innerWidth"] == width
    assert layout["scrollWidth"] <= width, f"the page scrolls sideways at {width}px: {layout}"
    assert layout["outside"] == [], f"outside the viewport at {width}px: {layout['outside']}"
    assert layout["clipped"] == [], f"clipped at {width}px: {layout['clipped']}"
    assert layout["dots"] > 0


async def test_the_list_fits_phones_tablets_and_desktops_with_figures_and_menu_visible(
        open_page: OpenPage, firm: Firm) -> None:
    from playwright.async_api import expect

    page = await open_page(width=390)
    await sign_in(page, firm, firm.admin)
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        await tab(page, "all").click()
        await expect(page.locator("#rows tr")).to_have_count(50)
        await assert_fits(page, width)
        # Each card (or row) shows its figures and its ⋯ button.
        first = row(page, "Edgar Eriksen")
        for cell in ("td.missing", "td.ready", "td.wallet", ".dots"):
            await expect(first.locator(cell)).to_be_in_viewport()
        await expect(first.locator("td.wallet")).to_contain_text("1,234.50")
        await shot(page, f"clients-{width}")

        await tab(page, "invitations").click()  # Accept, Decline and ⋯ on each card
        await expect(page.locator("#rows tr")).to_have_count(2)
        await assert_fits(page, width)
        if width == 390:
            await shot(page, f"invitations-{width}")

    # The open menu stays on screen next to a ⋯ at the right edge of a phone.
    await page.set_viewport_size({"width": 390, "height": 900})
    await tab(page, "all").click()
    await row(page, "Edgar Eriksen").locator(".dots").click()
    await expect(page.locator("#row-menu")).to_be_visible()
    box = await page.locator("#row-menu").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    await shot(page, "menu-390")
    await page.keyboard.press("Escape")

    # French labels are longer: still no sideways scroll, at any width, on either tab.
    await page.select_option("#lang", "fr")
    await expect(page.locator(".dev-badge")).to_have_text("mode développement")
    await assert_fits(page, 390)
    await shot(page, "clients-fr-390")
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        for tab_id, rows in (("invitations", 2), ("all", 50)):
            await tab(page, tab_id).click()
            await expect(page.locator("#rows tr")).to_have_count(rows)
            await assert_fits(page, width)


# --- 2. loading, error and offline states -----------------------------------------------------

async def test_while_the_list_loads_the_page_says_loading_never_no_clients(
        open_page: OpenPage, firm: Firm) -> None:
    from playwright.async_api import expect

    page = await open_page()
    release = asyncio.Event()

    async def held(route: Any) -> None:
        await release.wait()
        await route.continue_()

    await page.route(LIST, held)
    await expect(page.locator("#dev-picker")).to_be_visible()
    await page.select_option("#firm-select", firm.id)
    await page.click(f'.member[data-user-id="{firm.admin}"]')
    state = page.locator("#list-state")
    await expect(state).to_have_attribute("data-state", "loading")
    await expect(state.locator("#list-state-text")).to_have_text("Loading…")
    await expect(page.locator("#retry")).to_be_hidden()
    await expect(page.locator("#clients-page")).not_to_contain_text("No clients here yet.")
    await expect(page.locator("#clients-table")).to_be_hidden()
    await shot(page, "state-loading")

    release.set()
    await expect(page.locator("#rows tr")).to_have_count(1)  # My clients: Zoé Zola
    await expect(state).to_have_attribute("data-state", "")
    await expect(state.locator("#list-state-text")).to_have_text("")
    await page.unroute(LIST)


async def test_server_errors_and_network_failures_say_what_happened_and_retry_recovers(
        open_page: OpenPage, firm: Firm) -> None:
    from playwright.async_api import expect

    page = await open_page(failed_loads_expected=True)
    state = page.locator("#list-state")
    tabs = page.locator('#tabs [role="tab"]')

    # The very first load fails: no tabs known yet, an error and Retry, not "No clients".
    await page.route(LIST, lambda route: route.fulfill(status=500, content_type="text/plain",
                                                       body="Internal Server Error"))
    await expect(page.locator("#dev-picker")).to_be_visible()
    await page.select_option("#firm-select", firm.id)
    await page.click(f'.member[data-user-id="{firm.admin}"]')
    await expect(state).to_have_attribute("data-state", "error")
    await expect(state.locator("#list-state-text")).to_have_text(
        "The clients could not be loaded: the server answered 500 (server error).")
    await expect(page.locator("#retry")).to_be_visible()
    await expect(page.locator("#clients-page")).not_to_contain_text("No clients here yet.")
    await expect(page.locator(".toast")).to_have_count(0)  # said once, where the list is
    await shot(page, "state-error-500")
    await page.unroute(LIST)
    await page.click("#retry")
    await expect(tabs).to_have_count(4)
    await expect(page.locator("#rows tr")).to_have_count(1)
    await expect(state).to_have_attribute("data-state", "")

    failures: list[tuple[str, Callable[[Any], Awaitable[None]], str]] = [
        ("503", lambda route: route.fulfill(status=503, json={"title": "Service Unavailable", "status": 503}),
         "The clients could not be loaded: the server answered 503 (service unavailable)."),
        ("network", lambda route: route.abort("connectionrefused"),
         "The clients could not be loaded: the server could not be reached."),
    ]
    for name, answer, text in failures:
        await page.route(LIST, answer)
        await tab(page, "all").click()
        await expect(state.locator("#list-state-text")).to_have_text(text)
        await expect(page.locator("#rows tr")).to_have_count(0)  # no rows of the previous tab
        # The tabs stay as last known, the one asked for selected.
        await expect(tabs.locator(".tab-label")).to_have_text(["Invitations", "Onboarding", "My clients", "All"])
        await expect(tabs.locator(".count")).to_have_text(["2", "2", "1", "56"])
        await expect(tab(page, "all")).to_have_attribute("aria-selected", "true")
        await expect(page.locator("#shown")).to_have_text("")
        await shot(page, f"state-error-{name}")
        await page.unroute(LIST)
        await page.click("#retry")
        await expect(page.locator("#rows tr")).to_have_count(50)
        await expect(page.locator("#shown")).to_have_text("Showing 50 of 56")
        await expect(state).to_have_attribute("data-state", "")
        await tab(page, "mine").click()
        await expect(page.locator("#rows tr")).to_have_count(1)

    # Load more fails: the rows shown stay, the error is under them, Retry loads the rest.
    await tab(page, "all").click()
    await expect(page.locator("#rows tr")).to_have_count(50)
    await page.route(LIST, lambda route: route.fulfill(status=500, body="boom"))
    await page.click("#load-more")
    await expect(state.locator("#list-state-text")).to_have_text(
        "More clients could not be loaded: the server answered 500 (server error).")
    await expect(page.locator("#rows tr")).to_have_count(50)
    await page.unroute(LIST)
    await page.click("#retry")
    await expect(page.locator("#rows tr")).to_have_count(56)
    await expect(state).to_have_attribute("data-state", "")


async def test_offline_says_so_and_the_list_reloads_when_the_connection_is_back(
        open_page: OpenPage, firm: Firm) -> None:
    from playwright.async_api import expect

    page = await open_page(failed_loads_expected=True)
    await sign_in(page, firm, firm.admin)
    state = page.locator("#list-state")

    await page.context.set_offline(True)
    # The rows already shown stay, with a note that they may be out of date.
    await expect(page.locator("#offline-note")).to_be_visible()
    await expect(page.locator("#offline-note")).to_have_text(
        "You are offline: the list below may be out of date. It reloads when the connection is back.")
    await expect(page.locator("#rows tr")).to_have_count(1)

    await tab(page, "all").click()
    await expect(state).to_have_attribute("data-state", "offline")
    await expect(state.locator("#list-state-text")).to_have_text(
        "You are offline. The list will reload when the connection is back.")
    await expect(page.locator("#retry")).to_be_visible()
    await expect(page.locator("#offline-note")).to_be_hidden()  # said once
    await expect(page.locator('#tabs [role="tab"]')).to_have_count(4)
    await shot(page, "state-offline")

    await page.context.set_offline(False)  # the `online` event: the list comes back by itself
    await expect(page.locator("#rows tr")).to_have_count(50)
    await expect(state).to_have_attribute("data-state", "")
    await expect(page.locator("#offline-note")).to_be_hidden()


async def test_an_empty_result_says_no_client_matches(open_page: OpenPage, firm: Firm) -> None:
    from playwright.async_api import expect

    page = await open_page()
    await sign_in(page, firm, firm.admin)
    await tab(page, "all").click()
    await page.fill("#search", "zzzz-nobody")
    await expect(page.locator("#list-state")).to_have_attribute("data-state", "empty")
    await expect(page.locator("#list-state-text")).to_have_text("No client matches these filters.")
    await expect(page.locator("#retry")).to_be_hidden()


# --- 3. keyboard and ARIA ---------------------------------------------------------------------

async def test_the_tabs_the_menu_and_the_dialogs_work_from_the_keyboard(open_page: OpenPage, firm: Firm) -> None:
    from playwright.async_api import expect

    page = await open_page()
    await sign_in(page, firm, firm.admin)

    # Tabs: only the selected one is in the Tab order; the arrows move and open.
    tabs = page.locator('#tabs [role="tab"]')
    await expect(tabs).to_have_count(4)
    await expect(tab(page, "mine")).to_have_attribute("tabindex", "0")
    await expect(page.locator('#tabs [role="tab"][tabindex="-1"]')).to_have_count(3)
    await expect(page.locator("#tab-panel")).to_have_attribute("aria-labelledby", "tab-mine")
    await tab(page, "mine").focus()
    await page.keyboard.press("ArrowRight")
    await expect(tab(page, "all")).to_have_attribute("aria-selected", "true")
    await expect(tab(page, "all")).to_be_focused()
    await expect(page.locator("#rows tr")).to_have_count(50)
    await expect(tab(page, "all")).to_be_focused()  # still, after the tabs were redrawn
    await page.keyboard.press("Home")
    await expect(tab(page, "invitations")).to_have_attribute("aria-selected", "true")
    await expect(tab(page, "invitations")).to_be_focused()
    await page.keyboard.press("ArrowLeft")  # wraps to the last
    await expect(tab(page, "all")).to_have_attribute("aria-selected", "true")
    await expect(page.locator("#rows tr")).to_have_count(50)

    # The ⋯ menu: Enter opens it on its first item, the arrows move, Escape gives focus back.
    dots = row(page, "Edgar Eriksen").locator(".dots")
    await dots.focus()
    await page.keyboard.press("Enter")
    menu = page.locator("#row-menu")
    await expect(menu).to_be_visible()
    await expect(dots).to_have_attribute("aria-expanded", "true")
    await expect(menu.locator('[data-action="go"]')).to_be_focused()
    await page.keyboard.press("ArrowDown")
    await expect(menu.locator('[data-action="details"]')).to_be_focused()
    await page.keyboard.press("ArrowDown")
    await expect(menu.locator('[data-action="notify"]')).to_be_focused()
    await page.keyboard.press("ArrowDown")  # wraps
    await expect(menu.locator('[data-action="go"]')).to_be_focused()
    await page.keyboard.press("ArrowUp")
    await expect(menu.locator('[data-action="notify"]')).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(menu).to_be_hidden()
    await expect(dots).to_be_focused()
    await expect(dots).to_have_attribute("aria-expanded", "false")

    # Space opens it too; Enter on View details opens the dialog.
    await page.keyboard.press(" ")
    await expect(menu).to_be_visible()
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("Enter")
    dialog = page.locator("#details-dialog")
    await expect(dialog).to_be_visible()
    await expect(menu).to_be_hidden()
    # Tab cycles inside the dialog, both ways.
    stops = []
    for _ in range(8):
        await page.keyboard.press("Tab")
        where = await focused(page)
        assert where["dialog"] == "details-dialog", f"focus left the dialog: {where}"
        stops.append(where["id"] or where["text"])
    assert len(set(stops)) >= 3, stops  # it moved between the dialog's controls
    for _ in range(8):
        await page.keyboard.press("Shift+Tab")
        assert (await focused(page))["dialog"] == "details-dialog"
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(dots).to_be_focused()

    # Notify accountants, closed with its Cancel button: focus back on the ⋯ too.
    await page.keyboard.press("ArrowDown")  # opens the menu on its first item
    await page.keyboard.press("End")
    await expect(menu.locator('[data-action="notify"]')).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#notify-dialog")).to_be_visible()
    for _ in range(9):
        await page.keyboard.press("Tab")
        assert (await focused(page))["dialog"] == "notify-dialog"
    await page.locator('#notify-dialog [data-close]').click()
    await expect(page.locator("#notify-dialog")).to_be_hidden()
    await expect(dots).to_be_focused()

    # Tab out of an open menu: it closes and the focus is on its button.
    await page.keyboard.press("Enter")
    await expect(menu).to_be_visible()
    await page.keyboard.press("Tab")
    await expect(menu).to_be_hidden()
    await expect(dots).to_be_focused()

    # The confirm dialog (Decline): Escape cancels and gives the focus back to Decline.
    await tab(page, "invitations").click()
    decline = row(page, "Brasserie Zoé").locator('[data-action="decline"]')
    await decline.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#confirm-dialog")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(page.locator("#confirm-dialog")).to_be_hidden()
    await expect(decline).to_be_focused()
    await expect(page.locator("#rows tr")).to_have_count(2)  # nothing declined


# --- axe-core ---------------------------------------------------------------------------------

async def axe_check(page: Page, name: str, results: dict[str, Any]) -> None:
    """axe-core over the page as it is; no serious or critical violation."""
    from axe_playwright_python.async_playwright import Axe

    found = await Axe().run(page)
    assert len(found.response["passes"]) > 10, f"{name}: axe ran no rule"  # it did look at the page
    violations = found.response["violations"]
    results[name] = [{"id": v["id"], "impact": v["impact"], "nodes": len(v["nodes"]), "help": v["help"]}
                     for v in violations]
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{name}: {found.generate_report()}"


async def test_axe_finds_no_serious_or_critical_violation_on_the_page_the_menu_and_each_dialog(
        open_page: OpenPage, firm: Firm) -> None:
    from playwright.async_api import expect

    results: dict[str, Any] = {}
    for lang, width in (("en-GB", 1280), ("fr-FR", 390)):
        page = await open_page(locale=lang, width=width)
        await expect(page.locator("#dev-picker")).to_be_visible()
        await page.select_option("#firm-select", firm.id)
        await axe_check(page, f"{lang}-{width}-sign-in", results)
        await page.click(f'.member[data-user-id="{firm.admin}"]')
        await expect(page.locator("#rows tr").first).to_be_visible()
        await axe_check(page, f"{lang}-{width}-clients-mine", results)
        await tab(page, "all").click()
        await expect(page.locator("#rows tr")).to_have_count(50)
        await axe_check(page, f"{lang}-{width}-clients-all", results)

        await page.fill("#search", "societe")
        await expect(page.locator("#rows tr")).to_have_count(1)
        await row(page, "Société Générale").locator(".dots").click()
        await expect(page.locator("#row-menu")).to_be_visible()
        await axe_check(page, f"{lang}-{width}-menu-open", results)
        await page.click('#row-menu [data-action="details"]')
        await expect(page.locator("#details-dialog")).to_be_visible()
        await axe_check(page, f"{lang}-{width}-details-dialog", results)
        await page.keyboard.press("Escape")

        await row(page, "Société Générale").locator(".dots").click()
        await page.click('#row-menu [data-action="notify"]')
        await expect(page.locator("#notify-dialog")).to_be_visible()
        await axe_check(page, f"{lang}-{width}-notify-dialog", results)
        await page.keyboard.press("Escape")

        await page.fill("#search", "")
        await tab(page, "invitations").click()
        await expect(page.locator("#rows tr")).to_have_count(2)
        await axe_check(page, f"{lang}-{width}-invitations", results)
        await row(page, "Brasserie Zoé").locator('[data-action="decline"]').click()
        await expect(page.locator("#confirm-dialog")).to_be_visible()
        await axe_check(page, f"{lang}-{width}-confirm-dialog", results)
        await page.keyboard.press("Escape")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = ARTIFACTS / "axe-results.json"
    report.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"axe results (minor and moderate ones included): {report}")


# --- 4. French, elision, formats --------------------------------------------------------------

VISIBLE_TEXTS = """() => {
    const data = ".client-name, .accountants, #who-name, #lang, #firm-select, .member-name, .member-email, "
        + ".facts dd, #notify-recipients, .figure, .toast, #details-title";
    const texts = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        const parent = walker.currentNode.parentElement;
        const text = walker.currentNode.textContent.trim();
        if (text && parent && !parent.closest(data) && parent.checkVisibility()) texts.push(text);
    }
    for (const node of document.querySelectorAll("[placeholder], [aria-label], select:not(#lang) option")) {
        if (node.closest(data) || (node.tagName !== "OPTION" && !node.checkVisibility())) continue;
        for (const text of [node.getAttribute("placeholder"), node.getAttribute("aria-label"),
                            node.tagName === "OPTION" ? node.textContent : null]) {
            if (text) texts.push(text.trim());
        }
    }
    texts.push(document.title);
    return texts;
}"""


async def english_left(page: Page) -> list[str]:
    """Visible texts (data from the API aside) that are the English of a key whose French differs."""
    texts = await page.evaluate("window.PORTAL_TEXTS")
    patterns = []
    for key, english in texts["en"].items():
        if texts["fr"].get(key) == english:
            continue
        parts = re.split(r"\{\w+\}", english)
        patterns.append((key, re.compile(r"(?<!\w)" + r".+".join(map(re.escape, parts)) + r"(?!\w)")))
    shown = await page.evaluate(VISIBLE_TEXTS)
    return [f"{key}: {text!r}" for text in shown for key, pattern in patterns if pattern.search(text)]


async def test_french_every_visible_string_elision_and_one_format_per_language(
        open_page: OpenPage, firm: Firm) -> None:
    from playwright.async_api import expect

    page = await open_page(locale="fr-FR")
    await expect(page.locator("#dev-picker")).to_be_visible()
    await page.select_option("#firm-select", firm.id)
    await expect(page.locator("#dev-badge")).to_have_text("mode développement")
    assert await english_left(page) == []
    await page.click(f'.member[data-user-id="{firm.admin}"]')
    await expect(page.locator("#rows tr").first).to_be_visible()
    await tab(page, "all").click()
    await expect(page.locator("#rows tr")).to_have_count(50)
    assert await english_left(page) == []
    await expect(page.locator("#shown")).to_have_text("50 sur 56 affichés")

    # Amounts: fr-FR with the ISO code, "1 234,50 EUR".
    wallet = await row(page, "Edgar Eriksen").locator("td.wallet").text_content()
    assert spaces(wallet or "") == "1 234,50 EUR"

    # Elision before a vowel (Æ, É included), none before a consonant.
    titles = {"Ærø Bryggeri": "Notifier les comptables d'Ærø Bryggeri",
              "Élodie Café": "Notifier les comptables d'Élodie Café",
              "Société Générale": "Notifier les comptables de Société Générale"}
    for name, title in titles.items():
        if name == "Société Générale":  # past the first page
            await page.fill("#search", "societe")
            await expect(page.locator("#rows tr")).to_have_count(1)
        await row(page, name).locator(".dots").click()
        assert await english_left(page) == []
        await page.click('#row-menu [data-action="notify"]')
        await expect(page.locator("#notify-title")).to_have_text(title)
        assert await english_left(page) == []
        await page.keyboard.press("Escape")
    await page.fill("#search", "")
    await expect(page.locator("#rows tr")).to_have_count(50)
    await row(page, "Élodie Café").locator(".dots").click()
    await page.click('#row-menu [data-action="details"]')
    await expect(page.locator("#details-dialog")).to_be_visible()
    assert await english_left(page) == []
    await page.keyboard.press("Escape")

    await page.fill("#search", "")
    await tab(page, "invitations").click()
    await row(page, "Atelier Ørsted").locator('[data-action="decline"]').click()
    await expect(page.locator("#confirm-text")).to_have_text(
        "Refuser l'invitation d'Atelier Ørsted ? Le client ne sera pas connecté à votre cabinet.")
    assert await english_left(page) == []
    await shot(page, "fr-confirm-elision")
    await page.keyboard.press("Escape")

    # The rule itself (i18n.js, PORTAL_FORMATS), as docs/PORTAL.md "Formats" writes it.
    rule = await page.evaluate("""() => {
        const F = window.PORTAL_FORMATS;
        const dkk = { amount: "249055.88", currency: "DKK" };
        return {
            en_money: F.money("en", dkk), fr_money: F.money("fr", dkk),
            en_negative: F.money("en", { amount: "-12.5", currency: "EUR" }),
            en_date: F.date("en", "2026-12-07"), fr_date: F.date("fr", "2026-12-07"),
            en_when: F.date("en", "2026-12-07T09:00:00Z", { time: true, weekday: true }),
            fr_when: F.date("fr", "2026-12-07T09:00:00Z", { time: true, weekday: true }),
            en_count: F.count("en", 1234567), fr_count: F.count("fr", 1234567),
            acme: F.fill("fr", "de {name}", { name: "Acme" }),
            societe: F.fill("fr", "de {name}", { name: "Société Générale" }),
            oeuvre: F.fill("fr", "Le prix de {name}", { name: "Œuvre & Co" }),
            hotel: F.fill("fr", "de {name}", { name: "Hôtel du Lac" }),
            hachette: F.fill("fr", "de {name}", { name: "Hachette" }),
            le: F.fill("fr", "le {name}", { name: "Atelier" }), que: F.fill("fr", "que {name}", { name: "Yves" }),
            english: F.fill("en", "de {name}", { name: "Acme" }),
        };
    }""")
    assert rule["en_money"] == "DKK\u00a0249,055.88"  # a (no-break) space between code and number
    assert spaces(rule["fr_money"]) == "249 055,88 DKK"
    assert rule["en_negative"] == "-EUR\u00a012.50"
    assert (rule["en_date"], rule["fr_date"]) == ("7 December 2026", "7 décembre 2026")
    assert rule["en_when"] == "Monday, 7 December 2026 at 10:00"  # Copenhagen time
    assert rule["fr_when"] == "lundi 7 décembre 2026 à 10:00"
    assert (rule["en_count"], spaces(rule["fr_count"])) == ("1,234,567", "1 234 567")
    assert (rule["acme"], rule["societe"], rule["oeuvre"]) == ("d'Acme", "de Société Générale", "Le prix d'Œuvre & Co")
    assert (rule["hotel"], rule["hachette"]) == ("d'Hôtel du Lac", "de Hachette")
    assert (rule["le"], rule["que"], rule["english"]) == ("l'Atelier", "qu'Yves", "de Acme")

    # Back to English: British formats on the page.
    await page.select_option("#lang", "en")
    await tab(page, "all").click()
    await expect(page.locator("#rows tr")).to_have_count(50)
    await expect(row(page, "Edgar Eriksen").locator("td.wallet")).to_have_text("EUR\u00a01,234.50")
    await expect(page.locator("#dev-badge")).to_have_text("dev mode")


# --- 5. the footer's total --------------------------------------------------------------------

def fake_page(count: int, total: int | None) -> dict[str, Any]:
    items = [{"client_id": f"c-{n:03d}", "name": f"Nordisk Client {n:03d}", "status": "connected",
              "missing_receipts": 1 + n % 4, "ready_to_export": n, "accountants": [],
              "wallet_balance": {"amount": "249055.88", "currency": "DKK"}} for n in range(count)]
    page: dict[str, Any] = {"tab": "all", "tabs": [{"id": "mine", "count": 1}, {"id": "all", "count": 254}],
                            "items": items, "next_cursor": None}
    if total is not None:
        page["total"] = total
    return page


async def test_the_footer_shows_the_total_when_the_api_gives_it(open_page: OpenPage, firm: Firm) -> None:
    from playwright.async_api import expect

    page = await open_page()
    await sign_in(page, firm, firm.admin)
    answers: dict[str, int | None] = {"total": 254}

    async def answer(route: Any) -> None:
        await route.fulfill(json=fake_page(37, answers["total"]))

    await page.route(LIST, answer)
    await tab(page, "all").click()
    await page.check("#missing-filter")  # filtered: before `total`, only "Showing N"
    await expect(page.locator("#rows tr")).to_have_count(37)
    await expect(page.locator("#shown")).to_have_text("Showing 37 of 254")
    await expect(page.locator("#rows td.wallet").first).to_have_text("DKK\u00a0249,055.88")
    await shot(page, "footer-total-en")
    await page.select_option("#lang", "fr")
    await expect(page.locator("#shown")).to_have_text("37 sur 254 affichés")
    assert spaces(await page.locator("#rows td.wallet").first.text_content() or "") == "249 055,88 DKK"

    answers["total"] = None  # a server without `total`: today's wording
    await page.fill("#search", "nordisk")
    await expect(page.locator("#shown")).to_have_text("37 affichés")
    await page.select_option("#lang", "en")
    await expect(page.locator("#shown")).to_have_text("Showing 37")
    await page.unroute(LIST)


# --- View details: when the next email goes out -----------------------------------------------

async def test_view_details_says_when_the_next_email_goes_out(open_page: OpenPage, firm: Firm) -> None:
    from playwright.async_api import expect

    page = await open_page()
    await sign_in(page, firm, firm.admin)
    await tab(page, "all").click()
    details = page.locator("#details-dialog")
    next_digest = page.locator("#next-digest")

    # Email off: no date. Turned on and saved: the server's next_digest_at, in British English.
    await row(page, "Élodie Café").locator(".dots").click()
    await page.click('#row-menu [data-action="details"]')
    await expect(details).to_be_visible()
    await expect(next_digest).to_be_hidden()
    await page.check("#email-enabled")
    await page.select_option("#frequency", "weekly")
    await page.click("#save-details")
    await expect(details).to_be_hidden()
    await row(page, "Élodie Café").locator(".dots").click()
    await page.click('#row-menu [data-action="details"]')
    await expect(next_digest).to_have_text(
        re.compile(r"^Next email: (Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), "
                   r"\d{1,2} (January|February|March|April|May|June|July|August|September|October|November|December)"
                   r" \d{4} at \d{2}:\d{2}\.$"))
    await page.select_option("#frequency", "daily")  # not saved yet: the date would be wrong
    await expect(next_digest).to_be_hidden()
    await page.keyboard.press("Escape")

    # A known instant (Copenhagen winter time, +01:00), in French.
    async def known(route: Any) -> None:
        response = await route.fetch()
        body = await response.json()
        body["notifications"] = {"email_enabled": True, "frequency": "weekly",
                                 "next_digest_at": "2026-12-07T10:00:00+01:00"}
        await route.fulfill(response=response, json=body)

    await page.route(DETAILS, known)
    await page.select_option("#lang", "fr")
    await row(page, "Ærø Bryggeri").locator(".dots").click()
    await page.click('#row-menu [data-action="details"]')
    await expect(next_digest).to_have_text("Prochain e-mail : lundi 7 décembre 2026 à 10:00.")
    await shot(page, "details-next-digest-fr")
    await page.keyboard.press("Escape")
    await page.unroute(DETAILS)


async def test_an_accountant_unassigns_a_client_from_themselves_from_its_menu(open_page: OpenPage, firm: Firm) -> None:
    from playwright.async_api import expect

    page = await open_page()
    await sign_in(page, firm, firm.accountant)
    await tab(page, "mine").click()
    await expect(row(page, "Élodie Café")).to_be_visible()
    await row(page, "Élodie Café").locator(".dots").click()
    mine = page.locator('#row-menu [data-action="unassign-me"]')
    await expect(mine).to_be_visible()
    await expect(page.locator('#row-menu [data-action="notify"]')).to_be_hidden()  # an admin's
    await mine.click()
    await expect(page.locator("#confirm-dialog")).to_be_visible()
    await page.click("#confirm-yes")
    await expect(row(page, "Élodie Café")).to_have_count(0)
    await expect(page.locator("#toasts")).to_contain_text("no longer assigned to you")

    # An admin's menu offers no such item: admins assign and unassign anyone.
    admin_page = await open_page()
    await sign_in(admin_page, firm, firm.admin)
    await tab(admin_page, "all").click()
    await row(admin_page, "Élodie Café").locator(".dots").click()
    await expect(admin_page.locator('#row-menu [data-action="unassign-me"]')).to_be_hidden()
