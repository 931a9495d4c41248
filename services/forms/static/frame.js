/* Runs inside the form's iframe: tells the embedding page (form.js) how tall the form is, so the frame
 * fits it without a scroll bar. Sends a number only; nothing from the page is read or sent. */
(function (w, d) {
  "use strict";
  if (w.parent === w) return;
  function send() {
    w.parent.postMessage({fsFormHeight: d.documentElement.scrollHeight}, "*");
  }
  w.addEventListener("load", send);
  if (w.ResizeObserver) new w.ResizeObserver(send).observe(d.body);
})(window, document);
