// The Clients page: talks only to the public API (docs/CONTRACT.md) with the member's bearer
// token, plus /dev/* for the member picker when the service runs in dev mode.
// Every name from the API is inserted as text (never as HTML).
"use strict";

(() => {
  const TEXTS = window.PORTAL_TEXTS;
  const FORMATS = window.PORTAL_FORMATS;
  const LANGS = Object.keys(TEXTS);
  const PAGE_SIZE = 50;
  const SEARCH_DELAY_MS = 250;
  const TOAST_MS = 6000;
  const $ = (id) => document.getElementById(id);

  // --- language ---------------------------------------------------------------------------

  function browserLang() {
    for (const tag of navigator.languages || [navigator.language || "en"]) {
      const base = String(tag).toLowerCase().split("-")[0];
      if (LANGS.includes(base)) return base;
    }
    return "en";
  }

  const storedLang = localStorage.getItem("portal.lang");
  let lang = LANGS.includes(storedLang) ? storedLang : browserLang();

  // In French, "de {name}" becomes "d'{name}" before a vowel (i18n.js, PORTAL_FORMATS.fill).
  function t(key, params = {}) {
    const text = TEXTS[lang][key] ?? TEXTS.en[key] ?? key;
    return FORMATS.fill(lang, text, params);
  }

  const formatCount = (n) => FORMATS.count(lang, n);
  const formatMoney = (money) => FORMATS.money(lang, money);

  function applyTexts() {
    document.documentElement.lang = lang;
    document.title = `${t("clients_title")} · ${t("brand")}`;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
      node.placeholder = t(node.dataset.i18nPlaceholder);
    }
    for (const node of document.querySelectorAll("[data-i18n-label]")) {
      node.setAttribute("aria-label", t(node.dataset.i18nLabel));
    }
    $("lang").value = lang;
  }

  // --- small helpers ----------------------------------------------------------------------

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (value === true) node.setAttribute(key, "");
      else if (value !== false && value != null) node.setAttribute(key, value);
    }
    node.append(...children.filter((child) => child != null && child !== false));
    return node;
  }

  function toast(text, kind = "info") {
    const node = el("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
    $("toasts").append(node);
    setTimeout(() => node.remove(), TOAST_MS);
  }

  function newKey() {
    if (crypto.randomUUID) return crypto.randomUUID();
    return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  const enc = encodeURIComponent;

  // --- session ----------------------------------------------------------------------------

  const session = { token: null, claims: null, who: null };
  let config = { dev_mode: false };

  function decodeClaims(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
      const claims = JSON.parse(new TextDecoder().decode(bytes));
      if (!claims.sub || !claims.partner_id || !claims.role) return null;
      if (typeof claims.exp === "number" && claims.exp * 1000 < Date.now()) return null;
      return claims;
    } catch {
      return null;
    }
  }

  const isAdmin = () => session.claims?.role === "admin";

  function signIn(token, who) {
    const claims = decodeClaims(token);
    if (!claims) {
      toast(t("error", { detail: t("invalid_token") }), "error");
      return;
    }
    localStorage.setItem("portal.token", token);
    localStorage.setItem("portal.who", JSON.stringify(who || {}));
    Object.assign(session, { token, claims, who: who || {} });
    Object.assign(view, { tab: null, q: "", missing: false, sort: "name" });
    showPage();
  }

  function signOut(message) {
    localStorage.removeItem("portal.token");
    localStorage.removeItem("portal.who");
    Object.assign(session, { token: null, claims: null, who: null });
    list.seq += 1; // whatever is still in flight belongs to the previous member
    Object.assign(list, { tabs: [], items: [], next: null, total: null, loading: false, loaded: false, failure: null });
    showSignIn(message);
  }

  function restoreSession() {
    const params = new URLSearchParams(location.hash.slice(1));
    // A link may carry a token (#token=…): keep it, and take it out of the address bar.
    if (params.has("token")) {
      localStorage.setItem("portal.token", params.get("token"));
      localStorage.removeItem("portal.who");
      params.delete("token");
      history.replaceState(null, "", `${location.pathname}${params.toString() ? `#${params}` : ""}`);
    }
    const token = localStorage.getItem("portal.token");
    const claims = token && decodeClaims(token);
    if (!claims) return false;
    let who = {};
    try {
      who = JSON.parse(localStorage.getItem("portal.who") || "{}");
    } catch {
      who = {};
    }
    if (who.user_id !== claims.sub || who.partner_id !== claims.partner_id) who = {};
    Object.assign(session, { token, claims, who });
    return true;
  }

  class ApiError extends Error {
    constructor(status, detail, handled = false) {
      super(detail);
      this.status = status;
      this.detail = detail;
      this.handled = handled;
    }
  }

  async function api(method, path, { body, headers = {} } = {}) {
    const init = { method, headers: { Accept: "application/json", Authorization: `Bearer ${session.token}`, ...headers } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      // fetch rejects only when no answer came: offline, refused, reset, DNS...
      throw new ApiError(0, t("network_error"));
    }
    if (response.status === 401) {
      signOut(t("session_expired"));
      throw new ApiError(401, "unauthorized", true);
    }
    if (!response.ok) {
      let detail = response.statusText;
      try {
        detail = (await response.json()).detail || detail;
      } catch {
        // not a problem document: keep the status text
      }
      throw new ApiError(response.status, detail);
    }
    return response.status === 204 ? null : response.json();
  }

  function explain(error) {
    if (error.handled) return;
    const texts = { 403: "error_forbidden", 404: "error_not_found", 409: "error_conflict" };
    const detail = error instanceof ApiError ? error.detail : String(error.message || error);
    toast(t(texts[error.status] || "error", { detail }), "error");
  }

  // --- view state (kept in the address bar's fragment, so a reload keeps it) --------------

  const view = { tab: null, q: "", missing: false, sort: "name" };
  // failure: what the last list request met ({append, status, offline}), shown in the list
  // area with Retry; null when it succeeded. total: the page's `total` when the API gives it.
  const list = { tabs: [], items: [], next: null, total: null, seq: 0, loading: false, loaded: false, failure: null };

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    view.tab = params.get("tab") || null;
    view.q = params.get("q") || "";
    view.missing = params.get("missing") === "1";
    view.sort = params.get("sort") === "-name" ? "-name" : "name";
  }

  function writeHash() {
    const params = new URLSearchParams();
    if (view.tab) params.set("tab", view.tab);
    if (view.q) params.set("q", view.q);
    if (view.missing) params.set("missing", "1");
    if (view.sort !== "name") params.set("sort", view.sort);
    const hash = params.toString();
    history.replaceState(null, "", `${location.pathname}${location.search}${hash ? `#${hash}` : ""}`);
  }

  const defaultTab = (tabs) => (tabs.some((tab) => tab.id === "mine") ? "mine" : tabs[0]?.id ?? null);

  // --- the list ---------------------------------------------------------------------------

  async function loadPage({ append = false } = {}) {
    const seq = ++list.seq;
    const params = new URLSearchParams({ sort: view.sort, limit: String(PAGE_SIZE) });
    if (view.tab) params.set("tab", view.tab);
    if (view.q.trim()) params.set("q", view.q.trim());
    if (view.missing) params.set("missing_receipts", "true");
    if (append && list.next) params.set("cursor", list.next);
    list.failure = null;
    if (!append) list.loaded = false; // the rows shown (if any) are the previous view's
    setBusy(true);
    let page;
    try {
      page = await api("GET", `/v1/clients?${params}`);
    } catch (error) {
      if (seq !== list.seq) return;
      setBusy(false);
      if (error.handled) return; // 401: the sign-in is back
      if (error.status === 403 && view.tab) {
        // A tab this role never sees (an old link): fall back to the default one.
        view.tab = null;
        writeHash();
        loadPage();
        return;
      }
      // Said in the list area, with Retry; the tabs stay as last known. Rows of another view
      // are dropped (they would pass for the answer), appended pages kept.
      list.failure = { append, status: error.status || 0, offline: !error.status && navigator.onLine === false };
      if (!append) Object.assign(list, { items: [], next: null, total: null });
      render();
      return;
    }
    if (seq !== list.seq) return; // a newer request (typing, another tab) superseded this one
    setBusy(false);
    list.tabs = page.tabs;
    if (!page.tabs.some((tab) => tab.id === page.tab)) {
      // The tab is hidden now that it is empty (the last invitation answered): move on.
      view.tab = defaultTab(page.tabs);
      writeHash();
      loadPage();
      return;
    }
    view.tab = page.tab;
    writeHash();
    list.items = append ? list.items.concat(page.items) : page.items;
    list.next = page.next_cursor;
    list.total = typeof page.total === "number" ? page.total : null;
    list.loaded = true;
    render();
  }

  function setBusy(busy) {
    list.loading = busy;
    $("clients-table").setAttribute("aria-busy", String(busy));
    $("load-more").disabled = busy;
    renderState();
  }

  function failureText(failure) {
    const prefix = failure.append ? "more_failed" : "load_failed";
    if (failure.offline) return t("offline");
    if (!failure.status) return t(`${prefix}_network`);
    const reason = TEXTS.en[`reason_${failure.status}`] ? t(`reason_${failure.status}`) : t("reason_other");
    return t(`${prefix}_http`, { status: failure.status, reason });
  }

  // The list area says what is true: loading (nothing shown yet), empty (loaded, none),
  // failed or offline (with Retry); and a note when offline over rows loaded before.
  function renderState() {
    const box = $("list-state");
    const empty = list.items.length === 0;
    let state = null;
    let text = "";
    if (list.failure) {
      state = list.failure.offline ? "offline" : "error";
      text = failureText(list.failure);
    } else if (list.loading && (empty || !list.loaded)) {
      state = empty ? "loading" : null;
      text = t("loading");
    } else if (list.loaded && empty) {
      state = "empty";
      text = view.q.trim() || view.missing ? t("empty_search") : t("empty_tab");
    }
    box.dataset.state = state || ""; // always in the page: a live region announces changes
    $("list-state-text").textContent = state ? text : "";
    $("retry").hidden = state !== "error" && state !== "offline";
    $("offline-note").hidden = !(navigator.onLine === false && state !== "offline" && !empty);
    $("clients-table").hidden = empty && state !== null;
  }

  function render() {
    renderTabs();
    $("rows").replaceChildren(...list.items.map(row));
    const filtered = Boolean(view.q.trim() || view.missing);
    const shown = list.items.length > 0 && !(list.failure && !list.failure.append);
    // `total` (tab, search and filter) when the API gives it; otherwise the tab's count when
    // nothing narrows the list, else only how many rows are shown.
    const tabCount = list.tabs.find((tab) => tab.id === view.tab)?.count;
    const total = list.total ?? (filtered ? null : tabCount ?? null);
    $("shown").textContent = !shown ? "" : total === null
      ? t("shown", { n: formatCount(list.items.length) })
      : t("shown_of", { n: formatCount(list.items.length), total: formatCount(total) });
    $("load-more").hidden = !list.next || Boolean(list.failure);
    renderState();
  }

  // The controls follow the view only when it is set from outside (a link, a sign-in), never
  // while the member types: a late answer must not rewrite the search box.
  function syncControls() {
    $("search").value = view.q;
    $("missing-filter").checked = view.missing;
    $("sort").value = view.sort;
  }

  // Tabs (WAI-ARIA tabs pattern): one tab in the Tab order (the selected one); the arrows,
  // Home and End move between them and open the one they land on.
  function renderTabs() {
    const focused = document.activeElement?.closest?.("#tabs [role=tab]")?.dataset.tab;
    $("tabs").replaceChildren(...list.tabs.map((tab) => {
      const selected = tab.id === view.tab;
      return el("button", {
        type: "button", role: "tab", id: `tab-${tab.id}`, "aria-selected": String(selected),
        "aria-controls": "tab-panel", tabindex: selected ? "0" : "-1",
        class: selected ? "tab selected" : "tab", dataset: { tab: tab.id },
        onclick: () => selectTab(tab.id),
      }, el("span", { class: "tab-label" }, t(`tab_${tab.id}`)), el("span", { class: "count" }, formatCount(tab.count)));
    }));
    const panel = $("tab-panel");
    panel.setAttribute("aria-labelledby", list.tabs.some((tab) => tab.id === view.tab) ? `tab-${view.tab}` : "page-title");
    if (focused) ($(`tab-${focused}`) || $(`tab-${view.tab}`))?.focus();
  }

  function selectTab(id) {
    if (id === view.tab) return;
    view.tab = id;
    list.next = null;
    writeHash();
    loadPage();
    renderTabs(); // selected at once; the counts follow with the page
  }

  function onTabsKey(event) {
    const tabs = Array.from($("tabs").querySelectorAll("[role=tab]"));
    const at = tabs.indexOf(event.target.closest("[role=tab]"));
    if (at < 0) return;
    const moves = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const target = tabs[(moves[event.key] + tabs.length) % tabs.length];
    target.focus();
    selectTab(target.dataset.tab);
  }

  function row(item) {
    const names = item.accountants.map((a) => a.name).join(", ");
    const actions = el("td", { class: "actions" });
    if (item.status === "invited" && isAdmin()) {
      actions.append(
        el("button", { type: "button", class: "small primary", dataset: { action: "accept" },
          onclick: () => accept(item) }, t("accept")),
        el("button", { type: "button", class: "small secondary", dataset: { action: "decline" },
          onclick: () => decline(item) }, t("decline")),
      );
    }
    actions.append(el("button", {
      type: "button", class: "dots", "aria-haspopup": "menu", "aria-expanded": "false", "aria-controls": "row-menu",
      "aria-label": t("actions_for", { name: item.name }),
      onclick: (event) => openMenu(event.currentTarget, item),
      onkeydown: (event) => {
        if (event.key === "ArrowDown" || event.key === "ArrowUp") {
          event.preventDefault();
          openMenu(event.currentTarget, item, event.key === "ArrowUp" ? "last" : "first");
        }
      },
    }, "⋯"));
    return el("tr", { dataset: { clientId: item.client_id, status: item.status } },
      el("td", { class: "name" },
        el("span", { class: "client-name" }, item.name),
        item.status !== "connected" && el("span", { class: `status status-${item.status}` }, t(`status_${item.status}`))),
      // data-label: the column's name, shown on each figure when rows are cards (narrow screens)
      el("td", { class: names ? "accountants" : "accountants muted", "data-label": t("col_accountants") },
        names || t("not_assigned")),
      el("td", { class: item.missing_receipts > 0 ? "num missing warn" : "num missing", "data-label": t("col_missing") },
        formatCount(item.missing_receipts)),
      el("td", { class: "num ready", "data-label": t("col_ready") }, formatCount(item.ready_to_export)),
      el("td", { class: "num wallet", "data-label": t("col_wallet") }, formatMoney(item.wallet_balance)),
      actions,
    );
  }

  // --- the three-dots menu ----------------------------------------------------------------

  // WAI-ARIA menu button: Enter, Space or the arrows open it on an item; the arrows, Home and
  // End move between items; Escape or Tab closes it and gives the focus back to its button.
  let menuItem = null;
  let menuButton = null;

  const menuItems = () => Array.from($("row-menu").querySelectorAll("[role=menuitem]:not([hidden])"));

  function openMenu(button, item, at = "first") {
    const menu = $("row-menu");
    if (!menu.hidden && menuItem === item) {
      closeMenu({ focus: true });
      return;
    }
    if (menuButton) menuButton.setAttribute("aria-expanded", "false");
    menuItem = item;
    menuButton = button;
    menu.querySelector('[data-action="go"]').hidden = item.status !== "connected";
    menu.querySelector('[data-action="notify"]').hidden = !isAdmin();
    menu.setAttribute("aria-label", t("actions_for", { name: item.name }));
    menu.hidden = false;
    button.setAttribute("aria-expanded", "true");
    const rect = button.getBoundingClientRect();
    const width = menu.offsetWidth;
    const maxLeft = document.documentElement.clientWidth - width - 8;
    menu.style.top = `${rect.bottom + window.scrollY + 4}px`;
    menu.style.left = `${Math.max(8, Math.min(maxLeft, rect.right - width)) + window.scrollX}px`;
    const items = menuItems();
    focusMenuItem(items, at === "last" ? items.length - 1 : 0);
  }

  function focusMenuItem(items, index) {
    items.forEach((node, i) => node.setAttribute("tabindex", i === index ? "0" : "-1"));
    items[index]?.focus();
  }

  function onMenuKey(event) {
    const items = menuItems();
    const at = items.indexOf(document.activeElement);
    const moves = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: items.length - 1 };
    if (event.key in moves) {
      event.preventDefault();
      focusMenuItem(items, (moves[event.key] + items.length) % items.length);
    } else if (event.key === "Escape" || event.key === "Tab") {
      event.preventDefault();
      event.stopPropagation();
      closeMenu({ focus: true });
    }
  }

  function closeMenu({ focus = false } = {}) {
    $("row-menu").hidden = true;
    if (menuButton) {
      menuButton.setAttribute("aria-expanded", "false");
      if (focus && menuButton.isConnected) menuButton.focus();
    }
    menuItem = null;
    menuButton = null;
  }

  async function menuAction(action) {
    const item = menuItem;
    closeMenu({ focus: true }); // the dialogs give the focus back to this row's ⋯ button
    if (!item) return;
    if (action === "go") await goToClient(item);
    else if (action === "details") await showDetails(item);
    else if (action === "notify") await showNotify(item);
  }

  // --- dialogs: modal, the focus kept inside (Tab cycles), back where it came from on close --

  let dialogReturn = null;

  const rowButton = (clientId, selector) =>
    Array.from($("rows").querySelectorAll("tr")).find((tr) => tr.dataset.clientId === clientId)?.querySelector(selector);

  function openDialog(dialog, returnTo) {
    dialogReturn = returnTo;
    dialog.showModal();
  }

  function focusables(container) {
    return Array.from(container.querySelectorAll("button, input, select, textarea, a[href], [tabindex]"))
      .filter((node) => !node.disabled && node.tabIndex >= 0 && node.getClientRects().length > 0);
  }

  function trapTab(event) {
    if (event.key !== "Tab") return;
    const nodes = focusables(event.currentTarget);
    if (nodes.length === 0) return;
    const first = nodes[0];
    const last = nodes[nodes.length - 1];
    const inside = event.currentTarget.contains(document.activeElement);
    if (event.shiftKey && (document.activeElement === first || !inside)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (document.activeElement === last || !inside)) {
      event.preventDefault();
      first.focus();
    }
  }

  // Where the focus goes when what had it is gone (a declined invitation's row).
  function focusFallback() {
    if (document.activeElement && document.activeElement !== document.body) return;
    ($("rows").querySelector(".dots") || $(`tab-${view.tab}`) || $("search")).focus();
  }

  function onDialogClose() {
    const target = dialogReturn?.();
    dialogReturn = null;
    if (target?.isConnected) target.focus();
    else focusFallback();
  }

  // --- commands ---------------------------------------------------------------------------

  async function goToClient(item) {
    // Opened before the request, so the browser counts it as the user's click, not a pop-up.
    const target = window.open("", "_blank");
    try {
      const { url } = await api("GET", `/v1/clients/${enc(item.client_id)}/go`);
      if (target) {
        target.opener = null;
        target.location.href = url;
      } else {
        location.assign(url);
      }
    } catch (error) {
      if (target) target.close();
      explain(error);
    }
  }

  async function accept(item) {
    try {
      await api("POST", `/v1/invitations/${enc(item.client_id)}/accept`);
      toast(t("accepted", { name: item.name }));
    } catch (error) {
      explain(error);
    }
    await loadPage();
    focusFallback(); // the row (and its button) may be gone
  }

  async function decline(item) {
    if (!(await confirmAction(t("confirm_decline", { name: item.name }), t("decline")))) return;
    try {
      await api("POST", `/v1/invitations/${enc(item.client_id)}/decline`);
      toast(t("declined", { name: item.name }));
    } catch (error) {
      explain(error);
    }
    await loadPage();
    focusFallback(); // the row (and its button) may be gone
  }

  function confirmAction(text, yes) {
    const dialog = $("confirm-dialog");
    $("confirm-text").textContent = text;
    $("confirm-yes").textContent = yes;
    dialog.returnValue = "";
    const opener = document.activeElement;
    openDialog(dialog, () => opener);
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    });
  }

  function fact(label, value) {
    return [el("dt", {}, label), el("dd", {}, value)];
  }

  let detailsOf = null;

  async function showDetails(item) {
    let details;
    try {
      details = await api("GET", `/v1/clients/${enc(item.client_id)}`);
    } catch (error) {
      explain(error);
      return;
    }
    detailsOf = details;
    $("details-title").textContent = details.name;
    $("details-facts").replaceChildren(
      ...fact(t("status"), t(`status_${details.status}`)),
      ...fact(t("col_accountants"), details.accountants.map((a) => a.name).join(", ") || t("not_assigned")),
      ...fact(t("col_missing"), formatCount(details.missing_receipts)),
      ...fact(t("col_ready"), formatCount(details.ready_to_export)),
      ...fact(t("col_wallet"), formatMoney(details.wallet_balance)),
    );
    $("email-enabled").checked = details.notifications.email_enabled;
    $("frequency").value = details.notifications.frequency;
    $("frequency").disabled = !details.notifications.email_enabled;
    renderNextDigest();
    openDialog($("details-dialog"), () => rowButton(item.client_id, ".dots"));
  }

  // When the next digest goes out (the API's next_digest_at, by the notifier's schedule), in
  // the firm's time: "Next email: Monday, 7 December 2026 at 10:00." Only while it is true:
  // hidden when email is off and once the box or the frequency is changed before saving.
  function renderNextDigest() {
    const node = $("next-digest");
    const saved = detailsOf?.notifications;
    const unchanged = saved && $("email-enabled").checked === saved.email_enabled && $("frequency").value === saved.frequency;
    const when = unchanged && saved.email_enabled ? saved.next_digest_at : null;
    node.hidden = !when;
    node.textContent = when ? t("next_digest", { when: FORMATS.date(lang, when, { time: true, weekday: true }) }) : "";
  }

  async function saveDetails(event) {
    event.preventDefault();
    const details = detailsOf;
    if (!details) return;
    const button = $("save-details");
    button.disabled = true;
    try {
      await api("PUT", `/v1/clients/${enc(details.client_id)}/notifications`, {
        body: { email_enabled: $("email-enabled").checked, frequency: $("frequency").value },
      });
      $("details-dialog").close();
      toast(t("saved", { name: details.name }));
    } catch (error) {
      explain(error);
    } finally {
      button.disabled = false;
    }
  }

  let notifyOf = null;

  async function showNotify(item) {
    let details;
    try {
      // Fresh figures and accountants: the row may be older than the last event.
      details = await api("GET", `/v1/clients/${enc(item.client_id)}`);
    } catch (error) {
      explain(error);
      return;
    }
    // One key per opened dialog: a double click or a retry after a timeout sends once.
    notifyOf = { details, key: newKey() };
    $("notify-title").textContent = t("notify_title", { name: details.name });
    const names = details.accountants.map((a) => a.name).join(", ");
    $("notify-recipients").textContent = names ? t("recipients", { names }) : t("no_recipients");
    $("notify-recipients").classList.toggle("warn", !names);
    const figures = {
      missing_receipts: formatCount(details.missing_receipts),
      ready_to_export: formatCount(details.ready_to_export),
      wallet_balance: formatMoney(details.wallet_balance),
    };
    for (const node of document.querySelectorAll("#notify-form [data-figure]")) {
      node.textContent = `(${figures[node.dataset.figure]})`;
    }
    for (const box of document.querySelectorAll('#notify-form input[name="task"]')) box.checked = false;
    $("comment").value = "";
    $("send-reminder").disabled = true;
    openDialog($("notify-dialog"), () => rowButton(item.client_id, ".dots"));
  }

  function checkedTasks() {
    return Array.from(document.querySelectorAll('#notify-form input[name="task"]:checked'), (box) => box.value);
  }

  async function sendReminder(event) {
    event.preventDefault();
    const current = notifyOf;
    const tasks = checkedTasks();
    if (!current || tasks.length === 0) return;
    const button = $("send-reminder");
    button.disabled = true;
    try {
      await api("POST", `/v1/clients/${enc(current.details.client_id)}/reminders`, {
        body: { tasks, comment: $("comment").value },
        headers: { "Idempotency-Key": current.key },
      });
      $("notify-dialog").close();
      toast(t("reminder_sent", { name: current.details.name }));
    } catch (error) {
      explain(error);
    } finally {
      button.disabled = checkedTasks().length === 0;
    }
  }

  // --- signing in -------------------------------------------------------------------------

  let firms = [];

  async function showSignIn(message) {
    closeMenu();
    $("clients-page").hidden = true;
    $("who").hidden = true;
    $("sign-in").hidden = false;
    if (message) toast(message, "error");
    $("dev-picker").hidden = !config.dev_mode;
    $("token-form").hidden = config.dev_mode;
    if (config.dev_mode) await loadMembers();
    else $("token-input").focus();
  }

  async function loadMembers() {
    try {
      const response = await fetch("/dev/members", { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.statusText);
      firms = (await response.json()).firms;
    } catch (error) {
      toast(t("error", { detail: error.message }), "error");
      firms = [];
    }
    const select = $("firm-select");
    const previous = select.value || localStorage.getItem("portal.firm");
    select.replaceChildren(...firms.map((firm) =>
      el("option", { value: firm.partner_id }, `${firm.partner_id} (${firm.members.length})`)));
    if (firms.some((firm) => firm.partner_id === previous)) select.value = previous;
    $("no-members").hidden = firms.length > 0;
    select.closest("label").hidden = firms.length === 0;
    renderMembers();
  }

  function renderMembers() {
    const partnerId = $("firm-select").value;
    const firm = firms.find((f) => f.partner_id === partnerId);
    $("member-list").replaceChildren(...(firm ? firm.members : []).map((member) => el("li", {},
      el("button", {
        type: "button", class: "member", dataset: { userId: member.user_id, role: member.role },
        onclick: () => mintToken(partnerId, member),
      },
      el("span", { class: "member-name" }, member.name),
      el("span", { class: `role role-${member.role}` }, t(`role_${member.role}`)),
      el("span", { class: "member-email" }, `${member.email} · ${member.locale}`)))));
  }

  async function mintToken(partnerId, member) {
    try {
      const response = await fetch("/dev/token", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ partner_id: partnerId, user_id: member.user_id }),
      });
      if (!response.ok) throw new Error((await response.json()).detail || response.statusText);
      const minted = await response.json();
      localStorage.setItem("portal.firm", partnerId);
      signIn(minted.token, { user_id: minted.user_id, partner_id: partnerId, name: minted.name, role: minted.role });
    } catch (error) {
      toast(t("error", { detail: error.message }), "error");
    }
  }

  function renderWho() {
    const claims = session.claims;
    $("who-name").textContent = session.who?.name || claims.sub;
    $("who-name").title = `${claims.sub} · ${claims.partner_id}`;
    $("who-role").textContent = t(`role_${claims.role}`);
    $("switch-member").dataset.i18n = config.dev_mode ? "switch_member" : "sign_out";
    $("switch-member").textContent = t($("switch-member").dataset.i18n);
  }

  function showPage() {
    $("sign-in").hidden = true;
    $("clients-page").hidden = false;
    $("who").hidden = false;
    renderWho();
    syncControls();
    render();
    loadPage();
  }

  // --- wiring -----------------------------------------------------------------------------

  function wire() {
    $("lang").addEventListener("change", () => {
      lang = $("lang").value;
      localStorage.setItem("portal.lang", lang);
      applyTexts();
      if (session.token) {
        renderWho();
        render();
      } else if (config.dev_mode) {
        renderMembers();
      }
    });
    $("switch-member").addEventListener("click", () => signOut());
    $("firm-select").addEventListener("change", renderMembers);
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      signIn($("token-input").value.trim(), {});
    });

    let searchTimer = null;
    $("search").addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => {
        view.q = $("search").value;
        writeHash();
        loadPage();
      }, SEARCH_DELAY_MS);
    });
    $("missing-filter").addEventListener("change", () => {
      view.missing = $("missing-filter").checked;
      writeHash();
      loadPage();
    });
    $("sort").addEventListener("change", () => {
      view.sort = $("sort").value;
      writeHash();
      loadPage();
    });
    $("load-more").addEventListener("click", () => loadPage({ append: true }));

    $("tabs").addEventListener("keydown", onTabsKey);
    $("retry").addEventListener("click", () => loadPage({ append: Boolean(list.failure?.append) }));
    // Offline: said at once; what failed is tried again when the connection is back.
    window.addEventListener("offline", renderState);
    window.addEventListener("online", () => {
      renderState();
      if (session.token && list.failure) loadPage({ append: list.failure.append });
    });

    $("row-menu").addEventListener("click", (event) => {
      const button = event.target.closest("[data-action]");
      if (button) menuAction(button.dataset.action);
    });
    $("row-menu").addEventListener("keydown", onMenuKey);
    document.addEventListener("click", (event) => {
      if (!$("row-menu").hidden && !event.target.closest("#row-menu, .dots")) closeMenu();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !$("row-menu").hidden) closeMenu({ focus: true });
    });
    for (const dialog of document.querySelectorAll("dialog")) {
      dialog.addEventListener("keydown", trapTab);
      dialog.addEventListener("close", onDialogClose);
    }

    $("details-form").addEventListener("submit", saveDetails);
    $("email-enabled").addEventListener("change", () => {
      $("frequency").disabled = !$("email-enabled").checked;
      renderNextDigest();
    });
    $("frequency").addEventListener("change", renderNextDigest);
    $("notify-form").addEventListener("submit", sendReminder);
    $("notify-form").addEventListener("change", () => {
      $("send-reminder").disabled = checkedTasks().length === 0;
    });
    for (const button of document.querySelectorAll("dialog [data-close]")) {
      button.addEventListener("click", () => button.closest("dialog").close());
    }
  }

  async function boot() {
    applyTexts();
    wire();
    try {
      config = await (await fetch("/portal/config.json")).json();
    } catch {
      config = { dev_mode: false };
    }
    $("dev-badge").hidden = !config.dev_mode;
    renderState();
    $("dev-mail-link").hidden = !config.dev_mode;
    const signedIn = restoreSession();
    readHash();
    if (signedIn) showPage();
    else showSignIn();
    // A token link opened in a tab that already shows the portal changes only the fragment:
    // no reload, so take the token here too.
    window.addEventListener("hashchange", () => {
      if (!new URLSearchParams(location.hash.slice(1)).has("token")) return;
      if (restoreSession()) {
        readHash();
        showPage();
      }
    });
  }

  boot();
})();
