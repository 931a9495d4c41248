/* Inline in the form page (allowed by its hash): tells the embedding page (form.js) how tall the form is,
 * so the frame fits it without a scroll bar. Sends a number only; nothing from the page is read or sent. */
(function (w, d) {
  "use strict";
  if (w.parent === w) return;
  function send() {
    w.parent.postMessage({fsFormHeight: d.documentElement.scrollHeight}, "*");
  }
  w.addEventListener("DOMContentLoaded", function () {
    send();
    if (w.ResizeObserver) new w.ResizeObserver(send).observe(d.body);
  });
  w.addEventListener("load", send);
})(window, document);
