/* FunnelStream tracking snippet. Paste on every page:
 *   <script async src="https://COLLECT.HOST/t/fs.js" data-write-key="WRITE_KEY"></script>
 * Optional: data-host="https://COLLECT.HOST" (default: where this file came from),
 * data-auto-page="false" (no page view on load). Then: funnelstream.track("Signed Up", {plan: "pro"}).
 * Keeps a first-party anonymous id cookie (fs_aid, 1 year, SameSite=Lax) on the website's own domain.
 */
(function (w, d) {
  "use strict";
  var tag = d.currentScript || d.querySelector("script[data-write-key]");
  if (!tag || w.funnelstream) return;
  var key = tag.getAttribute("data-write-key");
  var host = (tag.getAttribute("data-host") || new URL(tag.src, location.href).origin).replace(/\/+$/, "");
  var memory = {};

  // localStorage may be missing or throw (blocked storage); then the user id lasts for this page only.
  function remember(name, value) {
    try {
      if (value === undefined) return w.localStorage.getItem(name) || memory[name];
      w.localStorage.setItem(name, value);
    } catch (e) { /* blocked storage: memory below */ }
    if (value === undefined) return memory[name];
    memory[name] = value;
  }

  function uuid() {
    var c = w.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    var b = c.getRandomValues(new Uint8Array(16)), h = "";
    for (var i = 0; i < 16; i++) h += (b[i] + 256).toString(16).slice(1);
    return h;
  }

  function anonymousId() {
    var m = d.cookie.match(/(?:^|;\s*)fs_aid=([^;]+)/);
    var id = m ? decodeURIComponent(m[1]) : uuid();
    // Rewritten on every load so the year counts from the last visit.
    d.cookie = "fs_aid=" + encodeURIComponent(id) + "; Max-Age=31536000; Path=/; SameSite=Lax" +
      (location.protocol === "https:" ? "; Secure" : "");
    return id;
  }

  function context() {
    var q = new URLSearchParams(location.search), campaign = {};
    ["source", "medium", "campaign", "term", "content"].forEach(function (p) {
      var v = q.get("utm_" + p);
      if (v) campaign[p === "campaign" ? "name" : p] = v;
    });
    return {
      page: page(), campaign: campaign, userAgent: navigator.userAgent,
      locale: navigator.language, library: {name: "fs.js", version: "1"}
    };
  }

  function page() {
    return {url: location.href, path: location.pathname, search: location.search,
      referrer: d.referrer, title: d.title};
  }

  function send(type, body) {
    body.type = type;
    body.writeKey = key;
    body.anonymousId = anonymousId();
    body.messageId = "fs-" + uuid();
    body.timestamp = body.sentAt = new Date().toISOString();
    body.context = context();
    var uid = remember("fs_uid");
    if (uid && !body.userId) body.userId = uid;
    var url = host + "/v1/" + type, json = JSON.stringify(body);
    // text/plain keeps sendBeacon and fetch free of a CORS preflight; ingest parses the body as JSON.
    if (navigator.sendBeacon && navigator.sendBeacon(url, new Blob([json], {type: "text/plain"}))) return;
    if (w.fetch) {
      w.fetch(url, {method: "POST", body: json, keepalive: true, credentials: "omit",
        headers: {"Content-Type": "text/plain"}}).catch(function () {});
    }
  }

  w.funnelstream = {
    page: function (properties) {
      var p = page(), k;
      for (k in properties || {}) p[k] = properties[k];
      send("page", {properties: p});
    },
    track: function (event, properties) {
      send("track", {event: String(event), properties: properties || {}});
    },
    identify: function (userId, traits) {
      remember("fs_uid", String(userId));
      send("identify", {userId: String(userId), traits: traits || {}});
    },
    anonymousId: anonymousId
  };
  if (tag.getAttribute("data-auto-page") !== "false") w.funnelstream.page();
})(window, document);
