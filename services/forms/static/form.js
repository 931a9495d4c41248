/* FunnelStream form embed. Paste where the form should appear:
 *   <script async src="https://COLLECT.HOST/forms/FORM_ID.js"></script>
 * Optional: data-target="#css-selector" (where to put the form; default: right after this tag),
 * data-height="520" (pixels, until the form reports its own height). The form is an iframe of https://COLLECT.HOST/forms/FORM_ID, given the
 * visitor's anonymous id (the fs.js tracker's, else its fs_aid cookie), this page's URL and its utm_*
 * parameters, so the new lead keeps the visitor's anonymous history and campaign.
 */
(function (w, d) {
  "use strict";
  var tag = d.currentScript;
  if (!tag) return;
  var src = new URL(tag.src, location.href);
  var page = src.origin + src.pathname.replace(/\.js$/, "");

  function cookie(name) {
    var m = d.cookie.match(new RegExp("(?:^|;\\s*)" + name + "=([^;]+)"));
    return m ? decodeURIComponent(m[1]) : "";
  }

  var aid = "";
  try {
    aid = (w.funnelstream && w.funnelstream.anonymousId && w.funnelstream.anonymousId()) || cookie("fs_aid");
  } catch (e) { aid = ""; }
  var q = new URLSearchParams(location.search), params = new URLSearchParams();
  params.set("embed", "1");
  if (aid) params.set("aid", aid);
  params.set("page", location.href.slice(0, 2000));
  ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"].forEach(function (p) {
    var v = q.get(p);
    if (v) params.set(p, v);
  });
  var frame = d.createElement("iframe");
  frame.src = page + "?" + params.toString();
  frame.title = tag.getAttribute("data-title") || "Sign-up form";
  frame.style.cssText = "width:100%;max-width:40rem;border:0;height:" + (parseInt(tag.getAttribute("data-height"), 10) || 560) + "px";
  // The form page reports its height (frame.js); only numbers from that frame are used.
  w.addEventListener("message", function (e) {
    var h = e.data && e.data.fsFormHeight;
    if (e.source === frame.contentWindow && e.origin === src.origin && typeof h === "number") {
      frame.style.height = Math.min(Math.max(Math.ceil(h), 100), 5000) + "px";
    }
  });
  var selector = tag.getAttribute("data-target"), target = selector && d.querySelector(selector);
  if (target) target.appendChild(frame);
  else tag.parentNode.insertBefore(frame, tag.nextSibling);
})(window, document);
