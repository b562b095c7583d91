/* notice service worker: shows Web Push notifications with their action buttons, opens
   their url (or the clicked action's) on click, and moves the subscription when the
   browser renews it (pushsubscriptionchange).
   Registered by push.js from <prefix>/static/notice/sw.js. */
"use strict";

const BASE = self.location.pathname.replace(/\/static\/notice\/sw\.js$/, "");

function base64UrlToBytes(text) {
  const padded = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

function safeUrl(value) {
  // only open http(s) pages; anything else (javascript:, data:) goes to the app root
  try {
    const url = new URL(value || "/", self.location.origin);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : self.location.origin + "/";
  } catch (e) {
    return self.location.origin + "/";
  }
}

self.addEventListener("push", (event) => {
  let message = {};
  if (event.data) {
    try {
      message = event.data.json();
    } catch (e) {
      message = { title: event.data.text() };
    }
  }
  const options = {
    body: message.body || "",
    data: { url: safeUrl(message.url), id: message.id, type: message.type, actions: {} },
  };
  // action buttons (GET actions of the notice): shown as "a0", "a1"..., their urls
  // kept in data for notificationclick
  if (Array.isArray(message.actions) && message.actions.length) {
    options.actions = message.actions.map((action, i) => {
      options.data.actions["a" + i] = safeUrl(action.url);
      return { action: "a" + i, title: String(action.title || "") };
    });
  }
  if (message.icon) options.icon = message.icon;
  if (message.lang) options.lang = message.lang; // the recipient's locale (notice.i18n)
  if (message.id) options.tag = "notice-" + message.id; // a repeat replaces, not stacks
  event.waitUntil(self.registration.showNotification(message.title || "Notification", options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  // a click on an action button opens its url; elsewhere on the notification, the notice's
  const target = (event.action && data.actions && data.actions[event.action]) || data.url || safeUrl("/");
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      for (const client of windows) {
        if (client.url === target && "focus" in client) return client.focus();
      }
      return self.clients.openWindow(target);
    })
  );
});

self.addEventListener("pushsubscriptionchange", (event) => {
  event.waitUntil(
    (async () => {
      let subscription = event.newSubscription;
      if (!subscription) {
        const response = await fetch(BASE + "/push/key");
        if (!response.ok) return;
        const { public_key: key } = await response.json();
        subscription = await self.registration.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: base64UrlToBytes(key),
        });
      }
      // Without the old subscription we cannot prove who we are; push.js re-registers
      // the new one on the next page visit instead.
      if (!event.oldSubscription) return;
      const old = event.oldSubscription.toJSON();
      await fetch(BASE + "/push/resubscribe", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          old_endpoint: old.endpoint,
          old_auth: old.keys.auth,
          subscription: subscription.toJSON(),
        }),
      });
    })()
  );
});
