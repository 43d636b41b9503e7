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
      if (answer.ok) {
        const holder = document.createElement("div");
        holder.innerHTML = await answer.text();
        const fresh = holder.querySelector("#runs");
        if (fresh) {
          current.replaceWith(fresh);
        }
      } else if (answer.redirected || answer.status === 401) {
        window.location.assign("/ui/sign-in");
        return;
      }
    } catch (error) {
      // The server is restarting or the network dropped: try again later.
    }
    window.setTimeout(refresh, 2000);
  }
  window.setTimeout(refresh, 2000);
})();
