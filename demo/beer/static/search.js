// Search as you type: the beer list's live part, read again for what the box holds. The
// form works without this script; with it, the address follows the box, so the live
// updates (live.js) read the list the visitor is looking at.
"use strict";

(() => {
  const box = document.getElementById("beer-search");
  const section = document.getElementById("live");
  if (!box || !section) return;
  let timer = null;
  let asked = 0;

  async function search() {
    const address = new URL("/beers", location.href);
    if (box.value.trim()) address.searchParams.set("q", box.value.trim());
    history.replaceState(null, "", address);
    address.searchParams.set("part", "live");
    const mine = ++asked;
    const response = await fetch(address, { credentials: "same-origin" });
    if (response.ok && mine === asked) section.innerHTML = await response.text();
  }

  box.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(search, 150);
  });
})();
