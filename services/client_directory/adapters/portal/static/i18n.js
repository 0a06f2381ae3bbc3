// Texts of the Clients page in English and French, and the one formatting rule per language
// (numbers, amounts, dates, French elision; docs/PORTAL.md "Formats"). The French follows the
// product's help article for the Clients page: its words are the ones customers already know.
"use strict";

window.PORTAL_TEXTS = {
  en: {
    brand: "Partner portal",
    clients_nav: "Clients",
    dev_mail: "Mail (dev)",
    dev_badge: "dev mode",
    retry: "Retry",
    load_failed_http: "The clients could not be loaded: the server answered {status} ({reason}).",
    load_failed_network: "The clients could not be loaded: the server could not be reached.",
    more_failed_http: "More clients could not be loaded: the server answered {status} ({reason}).",
    more_failed_network: "More clients could not be loaded: the server could not be reached.",
    offline: "You are offline. The list will reload when the connection is back.",
    offline_stale: "You are offline: the list below may be out of date. It reloads when the connection is back.",
    reason_500: "server error",
    reason_502: "bad gateway",
    reason_503: "service unavailable",
    reason_504: "gateway timeout",
    reason_429: "too many requests",
    reason_other: "HTTP error",
    network_error: "the server could not be reached",
    invalid_token: "invalid token",
    language: "Language",
    switch_member: "Switch member",
    sign_out: "Sign out",
    sign_in_title: "Sign in to the partner portal",
    dev_picker_hint: "Dev mode: pick a firm and a member; the page gets a token for them.",
    firm: "Firm",
    no_members: "No firm is known yet. Run make demo, then reload.",
    paste_token: "Paste a portal token (JWT)",
    sign_in: "Sign in",
    clients_title: "Clients",
    tab_invitations: "Invitations",
    tab_onboarding: "Onboarding",
    tab_mine: "My clients",
    tab_all: "All",
    search_label: "Search clients",
    search_placeholder: "Search clients",
    more_filters: "More filters",
    missing_receipts_filter: "Missing receipts",
    sort_by: "Sort",
    sort_asc: "Name, A to Z",
    sort_desc: "Name, Z to A",
    // The sorts by what needs attention (GET /v1/clients?sort=): a `-` sort is "most ... first".
    sort_missing_desc: "Most missing receipts first",
    sort_missing_asc: "Fewest missing receipts first",
    sort_ready_desc: "Most ready to export first",
    sort_ready_asc: "Fewest ready to export first",
    col_name: "Name",
    col_accountants: "Accountants",
    col_missing: "Missing receipts",
    col_ready: "Ready to export",
    col_wallet: "Wallet balance",
    col_actions: "Actions",
    load_more: "Load more",
    shown_of: "Showing {n} of {total}",
    shown: "Showing {n}",
    loading: "Loading…",
    empty_tab: "No clients here yet.",
    empty_search: "No client matches these filters.",
    not_assigned: "Not assigned",
    actions_for: "Actions for {name}",
    go_to_client: "Go to client",
    view_details: "View details",
    notify_accountants: "Notify accountants",
    unassign_me: "Unassign the client from you",
    confirm_unassign_me: "Unassign {name} from you? It leaves your clients; an admin can assign it to you again.",
    unassigned_me: "{name} is no longer assigned to you.",
    accept: "Accept",
    decline: "Decline",
    confirm_decline: "Decline the invitation of {name}? The client will not be connected to your firm.",
    accepted: "{name} is now connected to your firm.",
    declined: "The invitation of {name} was declined.",
    status_invited: "Invitation pending",
    status_onboarding: "Onboarding",
    status_verification_failed: "Verification failed",
    status_connected: "Connected",
    status: "Status",
    notifications: "Notifications",
    email: "Email",
    select_frequency: "Select frequency",
    daily: "Daily",
    weekly: "Weekly",
    monthly: "Monthly",
    notifications_hint: "You will start receiving notifications on Monday at 10:00 (Central European time).",
    next_digest: "Next email: {when}.",
    close: "Close",
    save: "Save",
    saved: "Your notification settings for {name} are saved.",
    tasks: "Tasks",
    task_missing_receipts: "Missing receipts",
    task_ready_to_export: "Expenses ready to export",
    task_wallet_balance: "Wallet balance",
    comment: "Comment",
    comment_placeholder: "Add any details for the accountants (optional)",
    cancel: "Cancel",
    send_email: "Send email",
    notify_title: "Notify accountants of {name}",
    recipients: "The email goes to every accountant assigned to this client: {names}.",
    no_recipients: "No accountant is assigned to this client yet: nobody would receive this email.",
    reminder_sent: "The accountants of {name} will receive an email.",
    session_expired: "Your session has ended. Sign in again.",
    error: "Something went wrong: {detail}",
    error_forbidden: "Your role may not do this.",
    error_not_found: "This client is no longer on your tabs.",
    error_conflict: "Not possible in the client's current state: {detail}",
    opening: "Opening {name}…",
    role_admin: "Admin",
    role_accountant: "Accountant",
    // issue 18: export, bulk assignment, reminder history, live page
    export: "Export",
    export_label: "Export this list as CSV",
    exported: "{file} is downloaded.",
    export_failed: "The export failed: {detail}",
    col_select: "Select",
    select_client: "Select {name}",
    select_all: "Select all loaded clients ({n})",
    selected_one: "{n} client selected",
    selected_other: "{n} clients selected",
    clear_selection: "Clear selection",
    bulk_assign: "Assign to…",
    bulk_unassign: "Unassign from…",
    bulk_assign_title_one: "Assign {n} client to an accountant",
    bulk_assign_title_other: "Assign {n} clients to an accountant",
    bulk_unassign_title_one: "Unassign an accountant from {n} client",
    bulk_unassign_title_other: "Unassign an accountant from {n} clients",
    accountant: "Accountant",
    bulk_known_hint: "The list shows you and the accountants assigned to the clients loaded on this page.",
    bulk_unassign_hint: "The list shows the accountants assigned to the selected clients.",
    bulk_none_assigned: "No accountant is assigned to the selected clients.",
    assign: "Assign",
    unassign: "Unassign",
    bulk_assigned_one: "{n} client assigned to {name}.",
    bulk_assigned_other: "{n} clients assigned to {name}.",
    bulk_unassigned_one: "{n} client no longer assigned to {name}.",
    bulk_unassigned_other: "{n} clients no longer assigned to {name}.",
    bulk_not_found_one: "{n} client was not found: it is no longer with your firm.",
    bulk_not_found_other: "{n} clients were not found: they are no longer with your firm.",
    reminders: "Reminders",
    reminders_none: "No reminder has been sent for this client yet.",
    reminders_failed: "The reminder history could not be loaded.",
    reminders_more_one: "Show {n} more reminder",
    reminders_more_other: "Show {n} more reminders",
    reminder_by: "Sent by {name}",
    reminder_at: "({when})",
    reminder_comment: "Comment: {comment}",
    someone_gone: "a former member",
    delivery_pending: "Pending",
    delivery_sent: "Sent",
    delivery_failed: "Failed",
    delivery_to: "Recipients",
    just_now: "just now",
    last_reminded: "Last reminded {ago} by {name} ({when}).",
    confirm_repeat: "The same tasks went out to these accountants {ago} (by {name}). Send them again?",
    send_again: "Send again",
    live_updated: "The list was updated.",
  },
  fr: {
    brand: "Portail des partenaires",
    clients_nav: "Clients",
    dev_mail: "E-mails (dev)",
    dev_badge: "mode développement",
    retry: "Réessayer",
    load_failed_http: "Les clients n'ont pas pu être chargés : le serveur a répondu {status} ({reason}).",
    load_failed_network: "Les clients n'ont pas pu être chargés : le serveur est injoignable.",
    more_failed_http: "La suite de la liste n'a pas pu être chargée : le serveur a répondu {status} ({reason}).",
    more_failed_network: "La suite de la liste n'a pas pu être chargée : le serveur est injoignable.",
    offline: "Vous êtes hors ligne. La liste se rechargera au retour de la connexion.",
    offline_stale: "Vous êtes hors ligne : la liste ci-dessous n'est peut-être plus à jour. Elle se rechargera au retour de la connexion.",
    reason_500: "erreur du serveur",
    reason_502: "passerelle en erreur",
    reason_503: "service indisponible",
    reason_504: "délai de la passerelle dépassé",
    reason_429: "trop de requêtes",
    reason_other: "erreur HTTP",
    network_error: "le serveur est injoignable",
    invalid_token: "jeton invalide",
    language: "Langue",
    switch_member: "Changer de membre",
    sign_out: "Se déconnecter",
    sign_in_title: "Connexion au portail des partenaires",
    dev_picker_hint: "Mode développement : choisissez un cabinet et un membre ; la page obtient un jeton pour lui.",
    firm: "Cabinet",
    no_members: "Aucun cabinet n'est encore connu. Lancez make demo, puis rechargez la page.",
    paste_token: "Collez un jeton du portail (JWT)",
    sign_in: "Se connecter",
    clients_title: "Clients",
    tab_invitations: "Invitations",
    tab_onboarding: "Intégration",
    tab_mine: "Mes clients",
    tab_all: "Tout",
    search_label: "Rechercher des clients",
    search_placeholder: "Rechercher des clients",
    more_filters: "Autres filtres",
    missing_receipts_filter: "Reçus manquants",
    sort_by: "Trier",
    sort_asc: "Nom, de A à Z",
    sort_desc: "Nom, de Z à A",
    sort_missing_desc: "Le plus de reçus manquants d'abord",
    sort_missing_asc: "Le moins de reçus manquants d'abord",
    sort_ready_desc: "Le plus de dépenses prêtes à exporter d'abord",
    sort_ready_asc: "Le moins de dépenses prêtes à exporter d'abord",
    col_name: "Nom",
    col_accountants: "Comptables",
    col_missing: "Reçus manquants",
    col_ready: "Prêtes à être exportées",
    col_wallet: "Solde du portefeuille",
    col_actions: "Actions",
    load_more: "Afficher plus",
    shown_of: "{n} sur {total} affichés",
    shown: "{n} affichés",
    loading: "Chargement…",
    empty_tab: "Aucun client ici pour le moment.",
    empty_search: "Aucun client ne correspond à ces filtres.",
    not_assigned: "Non assigné",
    actions_for: "Actions pour {name}",
    go_to_client: "Aller vers le client",
    view_details: "Afficher les détails",
    notify_accountants: "Notifier les comptables",
    unassign_me: "Vous désassigner du client",
    confirm_unassign_me: "Vous désassigner de {name} ? Le client quittera vos clients ; un administrateur peut vous l'assigner de nouveau.",
    unassigned_me: "{name} ne vous est plus assigné.",
    accept: "Accepter",
    decline: "Refuser",
    confirm_decline: "Refuser l'invitation de {name} ? Le client ne sera pas connecté à votre cabinet.",
    accepted: "{name} est maintenant connecté à votre cabinet.",
    declined: "L'invitation de {name} a été refusée.",
    status_invited: "Invitation en attente",
    status_onboarding: "Intégration en cours",
    status_verification_failed: "Échec de la vérification",
    status_connected: "Connecté",
    status: "Statut",
    notifications: "Notifications",
    email: "E-mail",
    select_frequency: "Sélectionner la fréquence",
    daily: "Quotidienne",
    weekly: "Hebdomadaire",
    monthly: "Mensuelle",
    notifications_hint: "Vous commencerez à recevoir des notifications le lundi à 10 heures (heure d'Europe centrale).",
    next_digest: "Prochain e-mail : {when}.",
    close: "Fermer",
    save: "Enregistrer",
    saved: "Vos notifications pour {name} sont enregistrées.",
    tasks: "Tâches",
    task_missing_receipts: "Reçus manquants",
    task_ready_to_export: "Dépenses prêtes à être exportées",
    task_wallet_balance: "Solde du portefeuille",
    comment: "Commentaire",
    comment_placeholder: "Ajoutez d'autres détails pour les comptables (facultatif)",
    cancel: "Annuler",
    send_email: "Envoyer l'email",
    notify_title: "Notifier les comptables de {name}",
    recipients: "L'e-mail est envoyé à tous les comptables affectés à ce client : {names}.",
    no_recipients: "Aucun comptable n'est encore affecté à ce client : personne ne recevrait cet e-mail.",
    reminder_sent: "Les comptables de {name} recevront un e-mail.",
    session_expired: "Votre session a pris fin. Reconnectez-vous.",
    error: "Une erreur s'est produite : {detail}",
    error_forbidden: "Votre rôle ne permet pas cette action.",
    error_not_found: "Ce client ne figure plus dans vos onglets.",
    error_conflict: "Impossible dans l'état actuel du client : {detail}",
    opening: "Ouverture de {name}…",
    role_admin: "Administrateur",
    role_accountant: "Comptable",
    export: "Exporter",
    export_label: "Exporter cette liste en CSV",
    exported: "{file} a été téléchargé.",
    export_failed: "L'export a échoué : {detail}",
    col_select: "Sélection",
    select_client: "Sélectionner {name}",
    select_all: "Sélectionner tous les clients chargés ({n})",
    selected_one: "{n} client sélectionné",
    selected_other: "{n} clients sélectionnés",
    clear_selection: "Effacer la sélection",
    bulk_assign: "Affecter à…",
    bulk_unassign: "Retirer un comptable…",
    bulk_assign_title_one: "Affecter {n} client à un comptable",
    bulk_assign_title_other: "Affecter {n} clients à un comptable",
    bulk_unassign_title_one: "Retirer un comptable de {n} client",
    bulk_unassign_title_other: "Retirer un comptable de {n} clients",
    accountant: "Comptable",
    bulk_known_hint: "La liste présente vous-même et les comptables affectés aux clients chargés sur cette page.",
    bulk_unassign_hint: "La liste présente les comptables affectés aux clients sélectionnés.",
    bulk_none_assigned: "Aucun comptable n'est affecté aux clients sélectionnés.",
    assign: "Affecter",
    unassign: "Retirer",
    bulk_assigned_one: "{n} client affecté à {name}.",
    bulk_assigned_other: "{n} clients affectés à {name}.",
    bulk_unassigned_one: "{n} client n'est plus affecté à {name}.",
    bulk_unassigned_other: "{n} clients ne sont plus affectés à {name}.",
    bulk_not_found_one: "{n} client est introuvable : il ne fait plus partie de votre cabinet.",
    bulk_not_found_other: "{n} clients sont introuvables : ils ne font plus partie de votre cabinet.",
    reminders: "Rappels",
    reminders_none: "Aucun rappel n'a encore été envoyé pour ce client.",
    reminders_failed: "L'historique des rappels n'a pas pu être chargé.",
    reminders_more_one: "Afficher {n} autre rappel",
    reminders_more_other: "Afficher {n} autres rappels",
    reminder_by: "Envoyé par {name}",
    reminder_at: "({when})",
    reminder_comment: "Commentaire : {comment}",
    someone_gone: "un ancien membre",
    delivery_pending: "En attente",
    delivery_sent: "Envoyé",
    delivery_failed: "Échec",
    delivery_to: "Destinataires",
    just_now: "à l'instant",
    last_reminded: "Dernier rappel {ago} par {name} ({when}).",
    confirm_repeat: "Les mêmes tâches ont été envoyées à ces comptables {ago} (par {name}). Les envoyer à nouveau ?",
    send_again: "Envoyer à nouveau",
    live_updated: "La liste a été mise à jour.",
  },
};

// One rule per language for everything the page formats (docs/PORTAL.md, "Formats"): the
// notifier's emails follow the same rule. English is British English (en-GB), French is fr-FR.
window.PORTAL_FORMATS = (() => {
  const LOCALES = { en: "en-GB", fr: "fr-FR" };
  const locale = (lang) => LOCALES[lang] || LOCALES.en;
  const NBSP = "\u00a0";

  const count = (lang, n) => new Intl.NumberFormat(locale(lang)).format(n);

  // The ISO code, never a symbol ("€" is ambiguous next to "$" of which country?), separated
  // from the number by a no-break space on both sides of the language: "DKK 249,055.88",
  // "249 055,88 DKK".
  function money(lang, value) {
    if (!value) return "—";
    let parts;
    try {
      parts = new Intl.NumberFormat(locale(lang), { style: "currency", currency: value.currency, currencyDisplay: "code" })
        .formatToParts(Number(value.amount));
    } catch {
      return `${value.amount}${NBSP}${value.currency}`;
    }
    const out = [];
    parts.forEach((part, i) => {
      const next = parts[i + 1];
      const previous = parts[i - 1];
      if (part.type === "currency" && previous && previous.type !== "literal" && previous.type !== "minusSign") out.push(NBSP);
      out.push(part.type === "literal" && /^\s+$/.test(part.value) ? NBSP : part.value);
      if (part.type === "currency" && next && next.type !== "literal") out.push(NBSP);
    });
    return out.join("");
  }

  // A calendar date (YYYY-MM-DD) or an instant (ISO 8601 with an offset): "7 December 2026",
  // "7 décembre 2026"; with time=true, the time of day in 24 hours in timeZone (default
  // Europe/Copenhagen, the firm's clock): "7 December 2026 at 10:00", "7 décembre 2026 à 10:00".
  function date(lang, value, { time = false, weekday = false, timeZone = "Europe/Copenhagen" } = {}) {
    const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(value);
    const when = new Date(dateOnly ? `${value}T12:00:00Z` : value);
    if (Number.isNaN(when.getTime())) return String(value);
    const options = { day: "numeric", month: "long", year: "numeric", timeZone: dateOnly ? "UTC" : timeZone };
    if (weekday) options.weekday = "long";
    if (time && !dateOnly) Object.assign(options, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    return new Intl.DateTimeFormat(locale(lang), options).format(when);
  }

  // French elision before a name: "de" + "Ærø Bryggeri" -> "d'Ærø Bryggeri", "le" -> "l'",
  // "que" -> "qu'", before a vowel (accents, Æ, Œ, Ø, Y included) or a mute h. Names starting
  // with an aspirated h keep the full word ("de Hachette"): the usual ones are listed.
  const ASPIRATED_H = /^h(ache|aie|all|alte|amac|ameau|anche|andicap|angar|ant|arcel|ardi|areng|aricot|arpe|asard|âte|aut|avre|éris|éros|être|ibou|iérarch|ockey|olland|omard|onte|ors|otte|oublon|ousse|uit|url|utte)/i;

  function startsWithVowelSound(name) {
    const word = String(name).trim();
    const bare = word.normalize("NFD").replace(/[\u0300-\u036f]/g, "");
    if (/^[aeiouyæœøå]/i.test(bare)) return true;
    return /^h[aeiouyæœøå]/i.test(bare) && !ASPIRATED_H.test(word.toLowerCase());
  }

  const ELIDED = { de: "d'", le: "l'", que: "qu'" };

  // Fills {placeholders}; in French, a "de"/"le"/"que" right before a placeholder is elided
  // when the value calls for it.
  function fill(lang, template, params = {}) {
    return template.replace(/(?:\b(de|le|que|De|Le|Que) )?\{(\w+)\}/g, (match, word, name) => {
      const value = String(params[name] ?? "");
      if (!word) return value;
      if (lang === "fr" && startsWithVowelSound(value)) {
        const short = ELIDED[word.toLowerCase()];
        return (word[0] === word[0].toUpperCase() ? short[0].toUpperCase() + short.slice(1) : short) + value;
      }
      return `${word} ${value}`;
    });
  }

  // How long ago an instant was, in words: "2 hours ago", "il y a 2 heures", "yesterday",
  // "hier" (Intl.RelativeTimeFormat, long style); under a minute, null (the page says "just now").
  function ago(lang, value, now = Date.now()) {
    const when = new Date(value).getTime();
    if (Number.isNaN(when)) return String(value);
    const seconds = Math.round((when - now) / 1000);
    if (Math.abs(seconds) < 60) return null;
    const format = new Intl.RelativeTimeFormat(locale(lang), { numeric: "auto", style: "long" });
    const steps = [["minute", 60], ["hour", 3600], ["day", 86400], ["week", 604800], ["month", 2629800], ["year", 31557600]];
    let unit = steps[0];
    for (const step of steps) if (Math.abs(seconds) >= step[1]) unit = step;
    return format.format(Math.trunc(seconds / unit[1]), unit[0]);
  }

  // CLDR's plural category of a count in the language ("one", "other"; French counts 0 as one).
  const plural = (lang, n) => new Intl.PluralRules(locale(lang)).select(n);

  return { locale, count, money, date, ago, plural, fill, startsWithVowelSound };
})();
