// The MCP console's only script. Every page works without it; with it, the
// runs table follows running runs without reloading the page.
"use strict";

(function () {
  const runs = document.getElementById("runs");
  if (!runs) {
    return;
  }
  async function refresh() {
    const current = document.getElementById("runs");
    if (!current || current.dataset.live !== "true") {
      return;
    }
    try {
      const answer = await fetch("/ui/runs/live", { credentials: "same-origin", headers: { Accept: "text/html" } });
      // An ended session is sent to the sign-in page, which fetch follows.
      if (answer.redirected || new URL(answer.url).pathname === "/ui/sign-in") {
        window.location.assign("/ui/sign-in");
        return;
      }
      if (answer.ok) {
        const holder = document.createElement("div");
        holder.innerHTML = await answer.text();
        const fresh = holder.querySelector("#runs");
        if (fresh) {
          current.replaceWith(fresh);
        }
      }
    } catch (error) {
      // The server is restarting or the network dropped: try again later.
    }
    window.setTimeout(refresh, 2000);
  }
  window.setTimeout(refresh, 2000);
})();
