/* notice.js: live notifications for any page; no build step, no dependencies.
 *
 * Include it with {{ notice_script() }} from "notice/macros.html" (the page also needs
 * <meta name="csrf-token">, given by notice_head()). It
 *  - opens an EventSource on data-stream and keeps every [data-notice-count] badge on
 *    the page equal to a count: the one the badge names (data-notice-count="unread" or
 *    "unseen"), else the script's data-badge (NOTICE_BADGE_COUNTS);
 *  - on the inbox page, marks the listed unseen items ([data-notice-unseen]) seen
 *    once the page is visible: opening the bell is seeing what it lists;
 *  - shows a dismissible pop-up (top right) for each new notice; clicking it marks the
 *    notice read and follows its link; clicking an inbox item does the same;
 *  - polls data-count every data-poll seconds when Server-Sent Events are unavailable;
 *  - on the inbox page (a .notice-list with data-notice-live="1", i.e. the newest page)
 *    inserts each arriving notice that passes the page's filters (data-notice-filter-*)
 *    in id order, updates an item already listed in place (a grouping update), and
 *    follows read/unread/archive/unarchive/delete done elsewhere (the stream's count
 *    event names the ids): an item archived in another tab leaves the open list;
 *  - renders a notice's optional category (class notice-level-<category> and a label
 *    from the script's data-levels), actor and target names and action buttons (GET: a link; POST: a small form carrying the
 *    CSRF token) in pop-ups and live items; malformed ones are left out.
 * Pop-ups stack at the bottom right (never over a page's header controls), at most
 * MAX_TOASTS at a time, each dismissible with its button; they sit in an ARIA live
 * region, so screen readers announce them.
 * It dispatches "notice:new" (detail: notice) and "notice:count" (detail: {unread, unseen})
 * on document, and sets <html data-notice-stream="open|polling|closed">.
 * Text from notices is only ever set with textContent, never parsed as HTML. Only a
 * link the server approved is followed: a notice's "link" field (null when its url
 * may not be a link), an inbox item's data-notice-url; never the raw "url".
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__noticeLoaded) { return; }
  window.__noticeLoaded = true;
  var cfg = {
    stream: script.getAttribute("data-stream") || "",
    count: script.getAttribute("data-count") || "",
    api: (script.getAttribute("data-api") || "").replace(/\/$/, ""),
    poll: Math.max(1, parseInt(script.getAttribute("data-poll"), 10) || 30) * 1000,
    badge: script.getAttribute("data-badge") === "unseen" ? "unseen" : "unread"
  };
  var CATEGORIES = ["info", "success", "warning", "error"];
  // each category's label in the page's language (data-levels: a JSON object)
  var LEVELS = {};
  try { LEVELS = JSON.parse(script.getAttribute("data-levels") || "{}") || {}; } catch (e) { LEVELS = {}; }
  var MAX_ACTIONS = 3;
  var root = document.documentElement;
  var toasts = null;
  var pollTimer = null;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function setStatus(value) { root.setAttribute("data-notice-stream", value); }

  // counts: {unread, unseen} from a count event or an API answer; a badge shows the
  // one it names, else the configured one; a count the answer lacks leaves it alone
  function updateBadges(counts) {
    if (!counts || typeof counts !== "object") { return; }
    var badges = document.querySelectorAll("[data-notice-count]");
    for (var i = 0; i < badges.length; i++) {
      var key = badges[i].getAttribute("data-notice-count") === "unread" ? "unread" :
        badges[i].getAttribute("data-notice-count") === "unseen" ? "unseen" : cfg.badge;
      if (typeof counts[key] !== "number") { continue; }
      var n = Math.max(0, counts[key]);
      badges[i].textContent = String(n);
      badges[i].classList.toggle("notice-badge--empty", n === 0);
    }
    document.dispatchEvent(new CustomEvent("notice:count", {
      detail: { unread: counts.unread, unseen: counts.unseen }
    }));
  }

  // the server already approved the link; refusing anything but http(s) here as well
  // keeps a javascript: URL out even if a page or an older server got that wrong
  function safeUrl(url) {
    if (!url) { return null; }
    try {
      var u = new URL(url, window.location.href);
      return (u.protocol === "http:" || u.protocol === "https:") ? u.href : null;
    } catch (e) { return null; }
  }

  function markRead(id) {
    return fetch(cfg.api + "/" + encodeURIComponent(id) + "/read", {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "Accept": "application/json" }
    }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (body) {
      updateBadges(body);
    }).catch(function () { /* offline: the inbox page still offers the button */ });
  }

  // ---- seen: what the open inbox lists has been seen ------------------------------------

  var seenTimer = null;

  function markSeen() {
    seenTimer = null;
    // a tab opened in the background has not been looked at yet
    if (document.visibilityState === "hidden") { return; }
    var items = document.querySelectorAll(".notice-list [data-notice-unseen]");
    var ids = [];
    for (var i = 0; i < items.length && ids.length < 1000; i++) {
      var id = parseInt(items[i].getAttribute("data-notice-id"), 10);
      if (id > 0) { ids.push(id); }
      items[i].removeAttribute("data-notice-unseen");
    }
    if (!ids.length || !cfg.api) { return; }
    fetch(cfg.api + "/seen", {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "X-CSRFToken": csrfToken(), "Accept": "application/json",
        "Content-Type": "application/json"
      },
      body: JSON.stringify({ ids: ids })
    }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(updateBadges).catch(function () { /* the next visit marks them */ });
  }

  function scheduleSeen() {
    // one request for a burst of arriving items
    if (!seenTimer) { seenTimer = setTimeout(markSeen, 300); }
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") { scheduleSeen(); }
  });

  // ---- a notice's optional category, actor/target and actions (the inbox-model contract)

  function category(notice) {
    return CATEGORIES.indexOf(notice.category) >= 0 ? notice.category : null;
  }

  // the label shows for all but "info", the default every notice has (as the page)
  function labelled(level) { return level && level !== "info"; }

  function levelLabel(level) {
    return typeof LEVELS[level] === "string" ? LEVELS[level] : level;
  }

  function label(value) {
    return (typeof value === "string" && value.trim()) ? value.trim().slice(0, 80) : null;
  }

  function actionsOf(notice) {
    var found = [];
    var list = Array.isArray(notice.actions) ? notice.actions : [];
    for (var i = 0; i < list.length && found.length < MAX_ACTIONS; i++) {
      var a = list[i];
      if (!a || typeof a !== "object") { continue; }
      var method = String(a.method || "GET").toUpperCase();
      var text = label(a.label);
      var url = safeUrl(a.url);
      if (text && url && (method === "GET" || method === "POST")) {
        found.push({ label: text, url: url, method: method });
      }
    }
    return found;
  }

  function actionsBlock(notice, className) {
    var actions = actionsOf(notice);
    if (!actions.length) { return null; }
    var box = document.createElement("div");
    box.className = className;
    for (var i = 0; i < actions.length; i++) {
      var a = actions[i], el;
      if (a.method === "POST") {
        el = document.createElement("form");
        el.className = "notice-action-form";
        el.method = "post";
        el.action = a.url;
        el.appendChild(hidden("csrf_token", csrfToken()));
        var b = document.createElement("button");
        b.className = "notice-button notice-action";
        b.textContent = a.label;
        el.appendChild(b);
      } else {
        el = document.createElement("a");
        el.className = "notice-button notice-action";
        el.href = a.url;
        el.textContent = a.label;
      }
      box.appendChild(el);
    }
    return box;
  }

  function refNode(ref, className) {
    if (!ref || typeof ref !== "object" || !label(ref.name)) { return null; }
    var url = safeUrl(ref.url);
    var el = document.createElement(url ? "a" : "span");
    el.className = className;
    if (url) { el.href = url; }
    el.textContent = label(ref.name);
    return el;
  }

  function refsBlock(notice, className) {
    var actor = refNode(notice.actor, "notice-item__actor");
    var target = refNode(notice.target, "notice-item__target");
    if (!actor && !target) { return null; }
    var p = document.createElement("p");
    p.className = className;
    if (actor) { p.appendChild(actor); }
    if (actor && target) { p.appendChild(document.createTextNode(" \u2192 ")); }
    if (target) { p.appendChild(target); }
    return p;
  }

  function setLevel(el, notice) {
    for (var i = 0; i < CATEGORIES.length; i++) {
      el.classList.remove("notice-level-" + CATEGORIES[i]);
    }
    var level = category(notice);
    if (level) { el.classList.add("notice-level-" + level); }
    return level;
  }

  function open(id, url) {
    var target = safeUrl(url);
    markRead(id).then(function () { if (target) { window.location.assign(target); } });
  }

  function dismiss(toast) {
    if (toast.parentNode) { toast.parentNode.removeChild(toast); }
  }

  var MAX_TOASTS = 3;

  function showToast(notice) {
    if (!toasts) {
      toasts = document.createElement("div");
      toasts.className = "notice-toasts";
      toasts.setAttribute("role", "status");
      toasts.setAttribute("aria-live", "polite");
      document.body.appendChild(toasts);
    }
    var old = toasts.querySelector('[data-notice-id="' + String(notice.id) + '"]');
    if (old) { dismiss(old); }
    var toast = document.createElement("div");
    toast.className = "notice-toast";
    var level = setLevel(toast, notice);
    toast.setAttribute("data-notice-id", String(notice.id));
    // a real button, so the pop-up is reachable and usable from the keyboard
    var body = document.createElement("button");
    body.type = "button";
    body.className = "notice-toast__body";
    if (labelled(level)) {
      var badge = document.createElement("span");
      badge.className = "notice-toast__level";
      badge.textContent = levelLabel(level);
      body.appendChild(badge);
    }
    var subject = document.createElement("span");
    subject.className = "notice-toast__subject";
    subject.textContent = notice.subject || "";
    body.appendChild(subject);
    if (notice.content) {
      var content = document.createElement("span");
      content.className = "notice-toast__content";
      content.textContent = notice.content;
      body.appendChild(content);
    }
    body.addEventListener("click", function () { dismiss(toast); open(notice.id, notice.link); });
    toast.appendChild(body);
    // outside the body button: a link or form cannot sit inside a button
    var refs = refsBlock(notice, "notice-toast__refs");
    if (refs) { toast.appendChild(refs); }
    var actions = actionsBlock(notice, "notice-toast__actions");
    if (actions) { toast.appendChild(actions); }
    var close = document.createElement("button");
    close.type = "button";
    close.className = "notice-toast__close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    close.addEventListener("click", function (ev) { ev.stopPropagation(); dismiss(toast); });
    toast.appendChild(close);
    toasts.insertBefore(toast, toasts.firstChild);
    while (toasts.children.length > MAX_TOASTS) { toasts.removeChild(toasts.lastChild); }
    setTimeout(function () { dismiss(toast); }, 15000);
  }

  // ---- the live inbox list ------------------------------------------------------------

  function liveList() { return document.querySelector(".notice-list[data-notice-live]"); }

  function matches(list, notice) {
    var read = list.getAttribute("data-notice-filter-read") || "";
    var isRead = notice.read_status === "Read";
    if (read === "false" && isRead) { return false; }
    if (read === "true" && !isRead) { return false; }
    var type = list.getAttribute("data-notice-filter-type") || "";
    if (type && notice.notice_type !== type) { return false; }
    var level = list.getAttribute("data-notice-filter-category") || "";
    if (level && category(notice) !== level) { return false; }
    var q = (list.getAttribute("data-notice-filter-q") || "").toLowerCase();
    // the server's search: a case-insensitive substring of the subject or the content
    if (q && (notice.subject || "").toLowerCase().indexOf(q) < 0 &&
        (notice.content || "").toLowerCase().indexOf(q) < 0) { return false; }
    return true;
  }

  function button(list, action, labelKey, quiet) {
    var b = document.createElement("button");
    b.className = "notice-button" + (quiet ? " notice-button--quiet" : "");
    b.name = "action";
    b.value = action;
    b.textContent = list.getAttribute(labelKey) || action;
    return b;
  }

  function hidden(name, value) {
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    return input;
  }

  function setReadState(list, item, isRead) {
    item.classList.toggle("notice-item--unread", !isRead);
    // a notice read here or in another tab gives "Archive all read" something to do
    var archiveRead = document.querySelector('.notice-inbox__bulk button[value="archive"]');
    if (isRead && archiveRead) { archiveRead.disabled = false; }
    var toggle = item.querySelector('.notice-item__actions button[value="read"], ' +
      '.notice-item__actions button[value="unread"]');
    if (toggle) {
      toggle.value = isRead ? "unread" : "read";
      toggle.textContent = list.getAttribute(isRead ? "data-label-unread" : "data-label-read") ||
        toggle.value;
    }
  }

  function removeAll(item, selector) {
    var old = item.querySelectorAll(selector);
    for (var i = 0; i < old.length; i++) { old[i].parentNode.removeChild(old[i]); }
  }

  function fillItem(list, item, notice) {
    removeAll(item, ".notice-item__refs, .notice-item__links, .notice-item__level");
    var level = setLevel(item, notice);
    var type = item.querySelector(".notice-item__type");
    if (labelled(level) && type) {
      var badge = document.createElement("span");
      badge.className = "notice-item__level";
      badge.textContent = levelLabel(level);
      type.insertBefore(badge, type.firstChild);
    }
    var link = safeUrl(notice.link);
    if (link) { item.setAttribute("data-notice-url", link); } else { item.removeAttribute("data-notice-url"); }
    var subject = item.querySelector(".notice-item__subject");
    var wanted = link ? "A" : "SPAN";
    if (!subject || subject.tagName !== wanted) {
      var fresh = document.createElement(wanted.toLowerCase());
      fresh.className = "notice-item__subject";
      if (subject) { subject.parentNode.replaceChild(fresh, subject); } else {
        item.insertBefore(fresh, item.querySelector(".notice-item__content, .notice-item__actions"));
      }
      subject = fresh;
    }
    if (link) { subject.setAttribute("href", link); }
    subject.textContent = notice.subject || "";
    var content = item.querySelector(".notice-item__content");
    if (notice.content) {
      if (!content) {
        content = document.createElement("p");
        content.className = "notice-item__content";
        item.insertBefore(content, item.querySelector(".notice-item__actions"));
      }
      content.textContent = notice.content;
    } else if (content) {
      content.parentNode.removeChild(content);
    }
    var form = item.querySelector(".notice-item__actions");
    var refs = refsBlock(notice, "notice-item__refs");
    if (refs) { item.insertBefore(refs, subject.nextSibling); }
    var links = actionsBlock(notice, "notice-item__links");
    if (links) { item.insertBefore(links, form); }
    setReadState(list, item, notice.read_status === "Read");
  }

  function buildItem(list, notice) {
    var item = document.createElement("li");
    item.className = "notice-item notice-item--live";
    item.setAttribute("data-notice-id", String(notice.id));
    if (!notice.seen_at) { item.setAttribute("data-notice-unseen", ""); }
    var head = document.createElement("div");
    head.className = "notice-item__head";
    var type = document.createElement("span");
    type.className = "notice-item__type";
    type.textContent = notice.notice_type || "";
    head.appendChild(type);
    var stamp = String(notice.create_at || "");
    // the API's times are UTC; one without an offset must not be read as local time
    if (stamp && !/(Z|[+-]\d\d:?\d\d)$/.test(stamp)) { stamp += "Z"; }
    var created = stamp ? new Date(stamp) : new Date();
    var time = document.createElement("time");
    time.className = "notice-item__time";
    if (!isNaN(created.getTime())) {
      time.setAttribute("datetime", created.toISOString());
      time.textContent = created.toISOString().slice(0, 16).replace("T", " ") + " UTC";
    }
    head.appendChild(time);
    item.appendChild(head);
    var form = document.createElement("form");
    form.className = "notice-item__actions";
    form.method = "post";
    form.action = list.getAttribute("data-notice-mark") || "";
    form.appendChild(hidden("csrf_token", csrfToken()));
    form.appendChild(hidden("id", String(notice.id)));
    form.appendChild(hidden("next", list.getAttribute("data-notice-next") || window.location.pathname));
    form.appendChild(button(list, "read", "data-label-read", false));
    form.appendChild(button(list, "archive", "data-label-archive", false));
    form.appendChild(button(list, "delete", "data-label-delete", true));
    item.appendChild(form);
    fillItem(list, item, notice);
    return item;
  }

  function itemOf(list, id) {
    return list.querySelector('.notice-item[data-notice-id="' + String(id) + '"]');
  }

  function liveNotice(notice) {
    var list = liveList();
    if (!list || typeof notice.id !== "number") { return; }
    var existing = itemOf(list, notice.id);
    if (existing) { fillItem(list, existing, notice); return; }
    if (list.getAttribute("data-notice-live") !== "1" || !matches(list, notice)) { return; }
    // newest first: before the first listed item with a smaller id
    var items = list.querySelectorAll(".notice-item[data-notice-id]");
    var before = null;
    for (var i = 0; i < items.length; i++) {
      if (parseInt(items[i].getAttribute("data-notice-id"), 10) < notice.id) { before = items[i]; break; }
    }
    if (!before && items.length) { return; }  // older than the whole page: not on this page
    list.insertBefore(buildItem(list, notice), before);
    var empty = document.querySelector(".notice-empty");
    if (empty) { empty.parentNode.removeChild(empty); }
    scheduleSeen();  // listed in the open inbox: seen
  }

  // ids: a list, or "all" / "read" for an id-less change (archive all read)
  function dropItems(list, ids) {
    var items = list.querySelectorAll(".notice-item[data-notice-id]");
    for (var i = 0; i < items.length; i++) {
      var id = parseInt(items[i].getAttribute("data-notice-id"), 10);
      var gone = Array.isArray(ids) ? ids.indexOf(id) >= 0 :
        ids === "all" || (ids === "read" && !items[i].classList.contains("notice-item--unread"));
      if (gone) { items[i].parentNode.removeChild(items[i]); }
    }
  }

  function liveCount(data) {
    var list = liveList();
    if (!list || !data) { return; }
    var i, item;
    if (typeof data.read === "boolean" && (Array.isArray(data.ids) || data.ids === null)) {
      // ids null: "mark all read/unread"
      var marked = data.ids === null ? list.querySelectorAll(".notice-item[data-notice-id]") : null;
      var n = marked ? marked.length : data.ids.length;
      for (i = 0; i < n; i++) {
        item = marked ? marked[i] : itemOf(list, data.ids[i]);
        if (item) { setReadState(list, item, data.read); }
      }
    }
    // archived elsewhere: leaves the inbox view; unarchived: leaves the Archived view
    var archivedView = list.hasAttribute("data-notice-archived");
    if (!archivedView && data.archived) { dropItems(list, data.archived); }
    if (archivedView && data.unarchived) { dropItems(list, data.unarchived); }
    if (Array.isArray(data.seen)) {
      for (i = 0; i < data.seen.length; i++) {
        item = itemOf(list, data.seen[i]);
        if (item) { item.removeAttribute("data-notice-unseen"); }
      }
    }
    if (Array.isArray(data.deleted)) {
      for (i = 0; i < data.deleted.length; i++) {
        item = itemOf(list, data.deleted[i]);
        if (item) { item.parentNode.removeChild(item); }
      }
    }
  }

  function poll() {
    if (!cfg.count) { return; }
    fetch(cfg.count, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(updateBadges)
      .catch(function () { /* try again at the next tick */ });
  }

  function startPolling() {
    if (pollTimer) { return; }
    setStatus("polling");
    poll();
    pollTimer = setInterval(poll, cfg.poll);
  }

  function stopPolling() {
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
  }

  function connect() {
    if (!cfg.stream || typeof window.EventSource !== "function") { startPolling(); return; }
    var source = new EventSource(cfg.stream, { withCredentials: true });
    source.addEventListener("open", function () { stopPolling(); setStatus("open"); });
    source.addEventListener("count", function (ev) {
      var data;
      try { data = JSON.parse(ev.data); } catch (e) { return; /* ignore bad data */ }
      updateBadges(data);
      liveCount(data);
    });
    source.addEventListener("notice", function (ev) {
      var notice;
      try { notice = JSON.parse(ev.data); } catch (e) { return; }
      showToast(notice);
      liveNotice(notice);
      document.dispatchEvent(new CustomEvent("notice:new", { detail: notice }));
    });
    source.addEventListener("closed", function () {
      // a newer tab of this user took over the stream: poll, do not reconnect (that
      // would close the next oldest tab's stream, and so on)
      source.close();
      setStatus("closed");
      startPolling();
    });
    source.addEventListener("error", function () {
      // CONNECTING: the browser retries by itself (and sends Last-Event-ID);
      // CLOSED: the server refused the stream, so poll instead
      if (source.readyState === EventSource.CLOSED) { setStatus("closed"); startPolling(); }
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  // inbox items: clicking the subject marks the notice read, then follows its link
  document.addEventListener("click", function (ev) {
    var link = ev.target.closest && ev.target.closest(".notice-item__subject");
    var item = link && link.closest("[data-notice-id]");
    if (!item || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey) { return; }
    ev.preventDefault();
    var list = liveList();
    if (list) { setReadState(list, item, true); } else { item.classList.remove("notice-item--unread"); }
    open(item.getAttribute("data-notice-id"), item.getAttribute("data-notice-url"));
  });

  connect();
  scheduleSeen();
}());
