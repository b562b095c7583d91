/* notice Web Push helper: asks permission, subscribes with the server's VAPID key and
   posts the subscription. Include it on logged-in pages that have
   <meta name="csrf-token" content="{{ notice_csrf_token() }}">:

     <script src="{{ url_for('notice.static', filename='notice/push.js') }}" defer></script>

   Any element with a data-notice-push attribute turns push on when clicked (its
   data-notice-push-on / data-notice-push-unavailable attributes are the texts it shows
   after; notice_push_button() in notice/macros.html writes them translated); or call
   window.noticePush.subscribe() / .unsubscribe() yourself. */
(function () {
  "use strict";

  const script = document.currentScript;
  const BASE =
    (script && script.dataset.noticePrefix) ||
    (script ? new URL(script.src).pathname.replace(/\/static\/notice\/push\.js$/, "") : "/notices");

  function supported() {
    return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function base64UrlToBytes(text) {
    const padded = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  }

  function sameKey(subscription, key) {
    const current = subscription.options && subscription.options.applicationServerKey;
    if (!current) return true;
    const a = new Uint8Array(current);
    const b = base64UrlToBytes(key);
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }

  async function post(path, body) {
    const response = await fetch(BASE + path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error("notice push: " + path + " answered " + response.status);
    return response.json();
  }

  /* navigator.serviceWorker.ready only settles for pages inside the worker's scope
     (<prefix>/static/notice/), so wait for this registration to activate instead. */
  function activated(reg) {
    if (reg.active) return Promise.resolve(reg);
    const worker = reg.installing || reg.waiting;
    return new Promise((resolve, reject) => {
      worker.addEventListener("statechange", () => {
        if (worker.state === "activated") resolve(reg);
        if (worker.state === "redundant") reject(new Error("notice push: service worker failed"));
      });
    });
  }

  async function registration() {
    return activated(await navigator.serviceWorker.register(BASE + "/static/notice/sw.js"));
  }

  async function publicKey() {
    const response = await fetch(BASE + "/push/key", { credentials: "same-origin" });
    if (!response.ok) throw new Error("notice push: push is not configured on the server");
    return (await response.json()).public_key;
  }

  /* Ask permission (call from a click), subscribe, and register the device. */
  async function subscribe() {
    if (!supported()) throw new Error("notice push: this browser has no Web Push");
    const permission = await Notification.requestPermission();
    if (permission !== "granted") throw new Error("notice push: permission " + permission);
    const [reg, key] = await Promise.all([registration(), publicKey()]);
    let subscription = await reg.pushManager.getSubscription();
    if (subscription && !sameKey(subscription, key)) {
      await subscription.unsubscribe(); // the server's VAPID key changed
      subscription = null;
    }
    if (!subscription) {
      subscription = await reg.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: base64UrlToBytes(key),
      });
    }
    await post("/push/subscribe", subscription.toJSON());
    return subscription;
  }

  /* Forget this device on the server and in the browser. */
  async function unsubscribe() {
    if (!supported()) return false;
    const reg = await navigator.serviceWorker.getRegistration(BASE + "/static/notice/sw.js");
    const subscription = reg && (await reg.pushManager.getSubscription());
    if (!subscription) return false;
    await post("/push/unsubscribe", { endpoint: subscription.endpoint });
    return subscription.unsubscribe();
  }

  /* Re-register the current subscription (covers a pushsubscriptionchange the
     service worker could not report). Needs no prompt: only runs once granted. */
  async function sync() {
    if (!supported() || Notification.permission !== "granted") return null;
    const reg = await navigator.serviceWorker.getRegistration(BASE + "/static/notice/sw.js");
    const subscription = reg && (await reg.pushManager.getSubscription());
    if (subscription) await post("/push/subscribe", subscription.toJSON());
    return subscription;
  }

  window.noticePush = { subscribe, unsubscribe, sync, supported };

  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("[data-notice-push]");
    if (!button) return;
    event.preventDefault();
    button.disabled = true;
    subscribe().then(
      () => {
        button.textContent = button.dataset.noticePushOn || "Push is on";
      },
      (error) => {
        button.disabled = false;
        button.textContent = button.dataset.noticePushUnavailable || "Push unavailable";
        console.warn(error);
      }
    );
  });

  if (supported() && Notification.permission === "granted") sync().catch(() => {});
})();
