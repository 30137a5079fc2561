// kbo's dashboard: while a page is live (its <main> has data-poll="SECONDS"), fetch it
// again every few seconds and swap in its live parts ([data-live] with an id), keeping
// open <details> open. No build step, no inline script: the page's CSP allows only this.
"use strict";

(function () {
  const main = document.getElementById("main");
  if (!main || !main.dataset.poll) {
    return;
  }
  const every = Math.max(1, Number(main.dataset.poll) || 3) * 1000;

  function swap(fresh) {
    const open = new Set(
      Array.from(document.querySelectorAll("details[open]"), (d) => d.id).filter(Boolean)
    );
    for (const part of document.querySelectorAll("[data-live]")) {
      const replacement = fresh.getElementById(part.id);
      if (replacement) {
        part.replaceWith(document.importNode(replacement, true));
      }
    }
    for (const id of open) {
      const details = document.getElementById(id);
      if (details) {
        details.open = true;
      }
    }
  }

  async function refresh() {
    let again = true;
    try {
      const answer = await fetch(window.location.href, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html" },
      });
      if (answer.ok) {
        const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
        swap(fresh);
        const freshMain = fresh.getElementById("main");
        again = Boolean(freshMain && freshMain.dataset.poll);
      }
    } catch (e) {
      // The service restarting or the network gone: try again at the next tick.
    }
    if (again) {
      window.setTimeout(refresh, every);
    } else {
      main.removeAttribute("data-poll");
    }
  }

  window.setTimeout(refresh, every);
})();
