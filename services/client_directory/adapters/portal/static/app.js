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

  // A count in a sentence: the key's `_one` or `_other` form by the language's plural rule.
  const tn = (key, n, params = {}) => {
    const form = `${key}_${FORMATS.plural(lang, n)}`;
    return t(TEXTS.en[form] ? form : `${key}_other`, { n: formatCount(n), ...params });
  };

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
    for (const node of document.querySelectorAll("[data-i18n-title]")) node.title = t(node.dataset.i18nTitle);
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
    seenAccountants.clear();
    showPage();
  }

  function signOut(message) {
    localStorage.removeItem("portal.token");
    localStorage.removeItem("portal.who");
    Object.assign(session, { token: null, claims: null, who: null });
    stopLive(); // the stream is the previous member's
    selection.clear();
    seenAccountants.clear();
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

  async function api(method, path, { body, headers = {}, raw = false } = {}) {
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
    if (raw) return response;
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
  // Admins: the client_ids ticked on the rows shown (cleared when the view changes).
  const selection = new Set();
  // The accountants the page has seen on any row since signing in (user_id -> name): the API
  // has no route listing a firm's members, so these (and the signed-in admin) are whom bulk
  // assignment offers.
  const seenAccountants = new Map();

  // What GET /v1/clients?sort= takes; anything else in an old or hand-made link is by name.
  const SORTS = ["name", "-name", "missing_receipts", "-missing_receipts", "ready_to_export", "-ready_to_export"];

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    view.tab = params.get("tab") || null;
    view.q = params.get("q") || "";
    view.missing = params.get("missing") === "1";
    const sort = params.get("sort");
    view.sort = SORTS.includes(sort) ? sort : "name";
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

  // The view's query (tab, search, filter, sort): for the list and for the CSV export alike.
  function viewParams() {
    const params = new URLSearchParams({ sort: view.sort });
    if (view.tab) params.set("tab", view.tab);
    if (view.q.trim()) params.set("q", view.q.trim());
    if (view.missing) params.set("missing_receipts", "true");
    return params;
  }

  function remember(items) {
    for (const item of items) for (const a of item.accountants) if (a.name) seenAccountants.set(a.user_id, a.name);
  }

  async function loadPage({ append = false } = {}) {
    const seq = ++list.seq;
    const params = viewParams();
    params.set("limit", String(PAGE_SIZE));
    if (append && list.next) params.set("cursor", list.next);
    list.failure = null;
    if (!append) {
      list.loaded = false; // the rows shown (if any) are the previous view's
      selection.clear();
    }
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
    remember(page.items);
    list.items = append ? list.items.concat(page.items) : page.items;
    list.next = page.next_cursor;
    list.total = typeof page.total === "number" ? page.total : null;
    list.loaded = true;
    render();
    if (live.pending) scheduleRefresh(); // a change came while this page was on its way
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

  const selectable = () => isAdmin() && view.tab !== "invitations";

  function render() {
    renderTabs();
    // Rows are rebuilt: the focus, if it was on one (its box, its ⋯), goes back to the same place.
    const active = document.activeElement;
    const focusedRow = active?.closest?.("#rows tr")?.dataset.clientId;
    const focusedPart = active?.classList?.contains("select-box") ? ".select-box" : ".dots";
    const shownIds = new Set(list.items.map((item) => item.client_id));
    for (const id of selection) if (!shownIds.has(id)) selection.delete(id);
    $("clients-table").classList.toggle("selectable", selectable());
    $("select-col").hidden = !selectable();
    $("rows").replaceChildren(...list.items.map(row));
    if (focusedRow) rowButton(focusedRow, focusedPart)?.focus();
    renderSelection();
    renderFoot();
    renderState();
  }

  function renderFoot() {
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
    const box = selectable() && el("td", { class: "select" }, el("input", {
      type: "checkbox", class: "select-box", checked: selection.has(item.client_id),
      "aria-label": t("select_client", { name: item.name }),
      onchange: (event) => {
        if (event.currentTarget.checked) selection.add(item.client_id);
        else selection.delete(item.client_id);
        renderSelection();
      },
    }));
    return el("tr", { dataset: { clientId: item.client_id, status: item.status }, class: selection.has(item.client_id) ? "selected" : null },
      box,
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
    // An accountant may drop a client they keep; an admin assigns and unassigns in bulk.
    menu.querySelector('[data-action="unassign-me"]').hidden =
      isAdmin() || item.status !== "connected" || !item.accountants.some((a) => a.user_id === session.claims?.sub);
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
    const wasOpen = !$("row-menu").hidden;
    $("row-menu").hidden = true;
    if (wasOpen && live.pending) scheduleRefresh();
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
    else if (action === "unassign-me") await unassignMe(item);
  }

  async function unassignMe(item) {
    if (!(await confirmAction(t("confirm_unassign_me", { name: item.name }), t("unassign")))) return;
    try {
      await api("DELETE", `/v1/clients/${enc(item.client_id)}/accountants/${enc(session.claims.sub)}`);
      toast(t("unassigned_me", { name: item.name }));
    } catch (error) {
      explain(error);
    }
    await loadPage();
    focusFallback(); // the row (and its button) may be gone
  }

  // --- dialogs: modal, the focus kept inside (Tab cycles), back where it came from on close --

  const dialogReturn = new Map(); // dialog -> where its focus goes back on close

  const rowButton = (clientId, selector) =>
    Array.from($("rows").querySelectorAll("tr")).find((tr) => tr.dataset.clientId === clientId)?.querySelector(selector);

  function openDialog(dialog, returnTo) {
    closeMenu();
    dialogReturn.set(dialog, returnTo);
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

  function onDialogClose(event) {
    const target = dialogReturn.get(event.currentTarget)?.();
    dialogReturn.delete(event.currentTarget);
    if (target?.isConnected) target.focus();
    else focusFallback();
    if (live.pending) scheduleRefresh(); // what changed while the dialog was open
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

  // A client's reminders, newest first (GET /v1/clients/{id}/reminders); null when they could
  // not be read (the dialogs say so and go on without them).
  async function loadReminders(clientId) {
    try {
      return (await api("GET", `/v1/clients/${enc(clientId)}/reminders?limit=50`)).items;
    } catch (error) {
      if (error.handled) throw error;
      return null;
    }
  }

  // "2 hours ago" and "7 December 2026 at 10:00" (the firm's time), for one instant.
  const ago = (when) => FORMATS.ago(lang, when) ?? t("just_now");
  const absolute = (when) => FORMATS.date(lang, when, { time: true });
  const personName = (person) => person?.name || t("someone_gone");
  const taskNames = (tasks) => tasks.map((task) => t(`task_${task}`)).join(", ");

  function timeNode(when, text) {
    return el("time", { datetime: when, title: absolute(when) }, text);
  }

  function reminderNode(reminder) {
    const when = reminder.requested_at;
    return el("li", { class: "reminder" },
      el("p", { class: "reminder-head" },
        el("strong", {}, t("reminder_by", { name: personName(reminder.requested_by) })), " ",
        timeNode(when, ago(when)), " ",
        el("span", { class: "muted" }, t("reminder_at", { when: absolute(when) }))),
      el("p", { class: "reminder-tasks" }, taskNames(reminder.tasks)),
      reminder.comment && el("p", { class: "reminder-comment" }, t("reminder_comment", { comment: reminder.comment })),
      el("ul", { class: "deliveries", "aria-label": t("delivery_to") }, ...reminder.deliveries.map((d) =>
        el("li", { class: "delivery" },
          el("span", { class: "delivery-name" }, personName(d)), " ",
          el("span", { class: `delivery-status delivery-${d.status}` }, t(`delivery_${d.status}`)),
          d.at && " ", d.at && timeNode(d.at, ago(d.at))))));
  }

  const REMINDERS_SHOWN = 3;

  function renderReminders(reminders, all = false) {
    const note = $("reminders-note");
    const more = $("reminders-more");
    note.hidden = reminders !== null && reminders.length > 0;
    note.textContent = reminders === null ? t("reminders_failed") : t("reminders_none");
    note.classList.toggle("warn", reminders === null);
    const shown = reminders ? (all ? reminders : reminders.slice(0, REMINDERS_SHOWN)) : [];
    $("reminder-list").replaceChildren(...shown.map(reminderNode));
    const hiddenCount = reminders ? reminders.length - shown.length : 0;
    more.hidden = hiddenCount === 0;
    more.textContent = hiddenCount ? tn("reminders_more", hiddenCount) : "";
  }

  async function showDetails(item) {
    let details;
    let reminders;
    try {
      [details, reminders] = await Promise.all([
        api("GET", `/v1/clients/${enc(item.client_id)}`), loadReminders(item.client_id)]);
    } catch (error) {
      explain(error);
      return;
    }
    detailsOf = { ...details, reminders };
    renderReminders(reminders);
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
    let reminders;
    try {
      // Fresh figures and accountants: the row may be older than the last event.
      [details, reminders] = await Promise.all([
        api("GET", `/v1/clients/${enc(item.client_id)}`), loadReminders(item.client_id)]);
    } catch (error) {
      explain(error);
      return;
    }
    // One key per opened dialog: a double click or a retry after a timeout sends once.
    notifyOf = { details, reminders, key: newKey() };
    const last = reminders?.[0];
    const lastNode = $("notify-last");
    lastNode.hidden = reminders !== null && !last;
    lastNode.classList.toggle("warn", reminders === null);
    lastNode.textContent = reminders === null ? t("reminders_failed") : last ? t("last_reminded", {
      ago: ago(last.requested_at), name: personName(last.requested_by), when: absolute(last.requested_at),
    }) : "";
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
    // The same tasks went out in the last 24 hours: ask before sending them again.
    const dayAgo = Date.now() - 24 * 3600 * 1000;
    const repeat = (current.reminders || []).find((reminder) =>
      new Date(reminder.requested_at).getTime() > dayAgo && tasks.every((task) => reminder.tasks.includes(task)));
    if (repeat && !(await confirmAction(t("confirm_repeat", {
      ago: ago(repeat.requested_at), name: personName(repeat.requested_by),
    }), t("send_again")))) return;
    if (notifyOf !== current || !$("notify-dialog").open) return;
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

  // --- selection and bulk assignment (admins) --------------------------------------------

  function renderSelection() {
    const bar = $("select-bar");
    bar.hidden = !selectable() || list.items.length === 0;
    if (bar.hidden) return;
    const n = selection.size;
    const all = $("select-all");
    all.checked = n > 0 && n === list.items.length;
    all.indeterminate = n > 0 && n < list.items.length;
    $("select-all-text").textContent = t("select_all", { n: formatCount(list.items.length) });
    $("selected-count").textContent = n ? tn("selected", n) : "";
    $("bulk-actions").hidden = n === 0;
    for (const tr of $("rows").querySelectorAll("tr")) tr.classList.toggle("selected", selection.has(tr.dataset.clientId));
  }

  function selectAll(on) {
    selection.clear();
    if (on) for (const item of list.items) selection.add(item.client_id);
    for (const box of $("rows").querySelectorAll(".select-box")) box.checked = on;
    renderSelection();
  }

  let bulkOf = null;

  // Whom the dialog offers: to assign, the accountants seen on the page and the admin signed in
  // (no route lists a firm's members); to unassign, those assigned to the selected clients.
  function bulkChoices(mode, items) {
    const people = new Map();
    if (mode === "assign") {
      for (const [id, name] of seenAccountants) people.set(id, name);
      if (!people.has(session.claims.sub)) people.set(session.claims.sub, session.who?.name || session.claims.sub);
    } else {
      for (const item of items) for (const a of item.accountants) people.set(a.user_id, a.name || a.user_id);
    }
    const collator = new Intl.Collator(FORMATS.locale(lang));
    return Array.from(people, ([user_id, name]) => ({ user_id, name })).sort((a, b) => collator.compare(a.name, b.name));
  }

  function showBulk(mode) {
    const items = list.items.filter((item) => selection.has(item.client_id));
    if (items.length === 0) return;
    const choices = bulkChoices(mode, items);
    bulkOf = { mode, items, choices };
    $("bulk-title").textContent = tn(`bulk_${mode}_title`, items.length);
    const names = items.slice(0, 5).map((item) => item.name).join(", ");
    $("bulk-clients").textContent = items.length > 5 ? `${names}, …` : names;
    const select = $("bulk-accountant");
    select.replaceChildren(...choices.map((c) => el("option", { value: c.user_id }, c.name)));
    select.disabled = choices.length === 0;
    $("bulk-hint").textContent = choices.length === 0 ? t("bulk_none_assigned")
      : t(mode === "assign" ? "bulk_known_hint" : "bulk_unassign_hint");
    $("bulk-hint").classList.toggle("warn", choices.length === 0);
    $("bulk-submit").textContent = t(mode);
    $("bulk-submit").disabled = choices.length === 0;
    openDialog($("bulk-dialog"), () => $(mode === "assign" ? "bulk-assign" : "bulk-unassign"));
  }

  async function applyBulk(event) {
    event.preventDefault();
    const current = bulkOf;
    const userId = $("bulk-accountant").value;
    if (!current || !userId) return;
    const name = current.choices.find((c) => c.user_id === userId)?.name || userId;
    const ids = current.items.map((item) => item.client_id);
    const button = $("bulk-submit");
    button.disabled = true;
    let result;
    try {
      result = await api("POST", `/v1/accountants/${enc(userId)}/clients`, {
        body: current.mode === "assign" ? { assign: ids, unassign: [] } : { assign: [], unassign: ids },
      });
    } catch (error) {
      explain(error);
      return;
    } finally {
      button.disabled = false;
    }
    $("bulk-dialog").close();
    const done = current.mode === "assign" ? result.assigned.length : result.unassigned.length;
    const parts = [];
    if (done) parts.push(tn(current.mode === "assign" ? "bulk_assigned" : "bulk_unassigned", done, { name }));
    if (result.not_found.length) parts.push(tn("bulk_not_found", result.not_found.length));
    toast(parts.join(" "), result.not_found.length && !done ? "error" : "info");
    selection.clear();
    await refreshList();
    $("select-all").focus(); // the bulk buttons are gone with the selection
  }

  // --- export -----------------------------------------------------------------------------

  // The whole filtered tab as CSV. The route needs the bearer token, so the file is fetched
  // with the Authorization header and saved from a blob: the token never goes into a URL.
  async function exportCsv() {
    const button = $("export");
    if (!view.tab || button.getAttribute("aria-busy") === "true") return;
    const file = `clients-${view.tab}.csv`;
    button.setAttribute("aria-busy", "true");
    try {
      const response = await api("GET", `/v1/clients.csv?${viewParams()}`, { raw: true, headers: { Accept: "text/csv" } });
      const url = URL.createObjectURL(await response.blob());
      const link = el("a", { href: url, download: file, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      toast(t("exported", { file }));
    } catch (error) {
      if (!error.handled) toast(t("export_failed", { detail: error.detail || String(error.message || error) }), "error");
    } finally {
      button.removeAttribute("aria-busy");
    }
  }

  // --- the live page: GET /v1/stream ------------------------------------------------------

  // One EventSource per signed-in member. Each `tabs` event updates the counts at once; the
  // list is fetched again (debounced) when a client shown changed, the open tab's count moved,
  // or the server says it cannot list them all. Never under an open dialog or menu, nor over a
  // request of the member's: then it waits for them. EventSource reconnects by itself with
  // Last-Event-ID; when the server refuses it (429, 401, 5xx) the page tries again later.
  const LIVE_DELAY_MS = 300;
  const live = { source: null, position: null, timer: null, retryTimer: null, retries: 0, pending: false, reconnected: false };

  function startLive() {
    stopLive();
    if (!session.token || typeof EventSource === "undefined") return;
    // EventSource cannot send headers: the stream alone takes the token as a query parameter.
    const source = new EventSource(`/v1/stream?access_token=${enc(session.token)}`);
    live.source = source;
    source.addEventListener("open", () => { live.retries = 0; });
    source.addEventListener("tabs", (event) => {
      if (live.source !== source) return;
      try {
        onLive(JSON.parse(event.data));
      } catch {
        // not the contract's data: ignore it, the next event says it all again
      }
    });
    source.addEventListener("error", () => {
      if (live.source !== source || source.readyState !== EventSource.CLOSED) return; // reconnecting
      live.source = null;
      if (!decodeClaims(session.token)) {
        signOut(t("session_expired"));
        return;
      }
      const delay = Math.min(60_000, 2000 * 2 ** live.retries);
      live.retries += 1;
      live.retryTimer = setTimeout(() => {
        live.reconnected = true;
        startLive();
      }, delay);
    });
  }

  function stopLive() {
    live.source?.close();
    clearTimeout(live.timer);
    clearTimeout(live.retryTimer);
    Object.assign(live, { source: null, timer: null, retryTimer: null, pending: false });
  }

  function onLive(event) {
    if (!session.token || !Array.isArray(event.tabs)) return;
    const before = list.tabs.find((tab) => tab.id === view.tab)?.count;
    const missed = live.reconnected && live.position !== null && event.position > live.position;
    live.reconnected = false;
    live.position = event.position;
    if (!list.loaded && !list.failure) return; // the list on its way tells the counts itself
    list.tabs = event.tabs;
    renderTabs();
    renderFoot();
    const after = event.tabs.find((tab) => tab.id === view.tab)?.count;
    const shown = new Set(list.items.map((item) => item.client_id));
    if (missed || event.truncated || before !== after || (event.clients || []).some((id) => shown.has(id))) {
      scheduleRefresh();
    }
  }

  function scheduleRefresh() {
    live.pending = true;
    clearTimeout(live.timer);
    live.timer = setTimeout(refreshList, LIVE_DELAY_MS);
  }

  const busy = () => list.loading || !$("row-menu").hidden || Boolean(document.querySelector("dialog[open]"));

  // The list again, as many rows as are shown (pages of up to 200), in place: no Loading…,
  // the rows, the selection, the focus and the scroll stay where they were.
  async function refreshList() {
    if (!session.token || !view.tab) return;
    if (busy()) {
      live.pending = true; // done when the dialog, the menu or the request is over
      return;
    }
    live.pending = false;
    const seq = ++list.seq;
    const want = Math.max(list.items.length, PAGE_SIZE);
    let items = [];
    let cursor = null;
    let page;
    try {
      do {
        const params = viewParams();
        params.set("limit", String(Math.min(200, want - items.length)));
        if (cursor) params.set("cursor", cursor);
        page = await api("GET", `/v1/clients?${params}`);
        if (seq !== list.seq) return; // the member asked for something else meanwhile
        items = items.concat(page.items);
        cursor = page.next_cursor;
      } while (cursor && items.length < want);
    } catch {
      return; // the rows shown stay; the next event or the member's next request tries again
    }
    if (!page.tabs.some((tab) => tab.id === view.tab)) {
      loadPage(); // the open tab is gone (emptied): loadPage moves on
      return;
    }
    remember(items);
    Object.assign(list, { tabs: page.tabs, items, next: cursor, failure: null, loaded: true,
      total: typeof page.total === "number" ? page.total : null });
    render();
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
    live.position = null;
    startLive();
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
    $("export").addEventListener("click", exportCsv);
    $("select-all").addEventListener("change", () => selectAll($("select-all").checked));
    $("bulk-assign").addEventListener("click", () => showBulk("assign"));
    $("bulk-unassign").addEventListener("click", () => showBulk("unassign"));
    $("bulk-clear").addEventListener("click", () => {
      selectAll(false);
      $("select-all").focus();
    });
    $("bulk-form").addEventListener("submit", applyBulk);
    $("reminders-more").addEventListener("click", () => {
      renderReminders(detailsOf?.reminders ?? [], true);
      $("reminder-list").querySelector(`li:nth-child(${REMINDERS_SHOWN + 1})`)?.setAttribute("tabindex", "-1");
      $("reminder-list").querySelector(`li:nth-child(${REMINDERS_SHOWN + 1})`)?.focus();
    });

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
