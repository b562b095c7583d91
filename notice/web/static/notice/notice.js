/* notice.js: live notifications for any page; no build step, no dependencies.
 *
 * Include it with {{ notice_script() }} from "notice/macros.html" (the page also needs
 * <meta name="csrf-token">, given by notice_head()). It
 *  - opens an EventSource on data-stream and keeps every [data-notice-count] badge on
 *    the page equal to the unread count;
 *  - shows a dismissible pop-up (top right) for each new notice; clicking it marks the
 *    notice read and follows its link; clicking an inbox item does the same;
 *  - polls data-count every data-poll seconds when Server-Sent Events are unavailable.
 * It dispatches "notice:new" (detail: notice) and "notice:count" (detail: {unread})
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
    poll: Math.max(1, parseInt(script.getAttribute("data-poll"), 10) || 30) * 1000
  };
  var root = document.documentElement;
  var toasts = null;
  var pollTimer = null;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function setStatus(value) { root.setAttribute("data-notice-stream", value); }

  function updateBadges(unread) {
    var n = Math.max(0, parseInt(unread, 10) || 0);
    var badges = document.querySelectorAll("[data-notice-count]");
    for (var i = 0; i < badges.length; i++) {
      badges[i].textContent = String(n);
      badges[i].classList.toggle("notice-badge--empty", n === 0);
    }
    document.dispatchEvent(new CustomEvent("notice:count", { detail: { unread: n } }));
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
      if (body && typeof body.unread === "number") { updateBadges(body.unread); }
    }).catch(function () { /* offline: the inbox page still offers the button */ });
  }

  function open(id, url) {
    var target = safeUrl(url);
    markRead(id).then(function () { if (target) { window.location.assign(target); } });
  }

  function dismiss(toast) {
    if (toast.parentNode) { toast.parentNode.removeChild(toast); }
  }

  function showToast(notice) {
    if (!toasts) {
      toasts = document.createElement("div");
      toasts.className = "notice-toasts";
      toasts.setAttribute("role", "status");
      toasts.setAttribute("aria-live", "polite");
      document.body.appendChild(toasts);
    }
    var toast = document.createElement("div");
    toast.className = "notice-toast";
    toast.setAttribute("data-notice-id", String(notice.id));
    var subject = document.createElement("span");
    subject.className = "notice-toast__subject";
    subject.textContent = notice.subject || "";
    toast.appendChild(subject);
    if (notice.content) {
      var content = document.createElement("span");
      content.className = "notice-toast__content";
      content.textContent = notice.content;
      toast.appendChild(content);
    }
    var close = document.createElement("button");
    close.type = "button";
    close.className = "notice-toast__close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    close.addEventListener("click", function (ev) { ev.stopPropagation(); dismiss(toast); });
    toast.appendChild(close);
    toast.addEventListener("click", function () { dismiss(toast); open(notice.id, notice.link); });
    toasts.insertBefore(toast, toasts.firstChild);
    while (toasts.children.length > 5) { toasts.removeChild(toasts.lastChild); }
    setTimeout(function () { dismiss(toast); }, 15000);
  }

  function poll() {
    if (!cfg.count) { return; }
    fetch(cfg.count, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) { if (body) { updateBadges(body.unread); } })
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
      try { updateBadges(JSON.parse(ev.data).unread); } catch (e) { /* ignore bad data */ }
    });
    source.addEventListener("notice", function (ev) {
      var notice;
      try { notice = JSON.parse(ev.data); } catch (e) { return; }
      showToast(notice);
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
    item.classList.remove("notice-item--unread");
    open(item.getAttribute("data-notice-id"), item.getAttribute("data-notice-url"));
  });

  connect();
}());
