// Live pages: settee's WebSocket changes feed tells a page when what it shows has changed.
//
// A page marks its live part, <section id="live" data-watch="beers|beer|brewery"
// data-since="SEQ" data-doc-id="ID">, SEQ being the database's seq when the page was read.
// This script asks the demo for a one-time token (POST /live/token), opens settee's feed
// (ws://HOST:SETTEE_PORT/DB/_changes?feed=websocket&since=SEQ&token=...) and, when a change
// concerns the page, reads the live part again (the same address with ?part=live) and swaps
// it in. After a drop it reconnects, backing off, with since = the last seq it received: a
// change made meanwhile arrives then. Seqs are opaque: kept and sent back, never compared.
"use strict";

(() => {
  const section = document.getElementById("live");
  const status = document.getElementById("live-status");
  const toggle = document.getElementById("live-toggle");
  if (!section) return;
  const watch = section.dataset.watch;
  const docId = section.dataset.docId || null;
  const settee = document.body.dataset;
  const FIRST_DELAY = 250;
  const LONGEST_DELAY = 8000;

  const live = {
    socket: null,
    lastSeq: JSON.parse(section.dataset.since),
    connects: 0, // sockets opened
    updates: 0, // times the live part was read again
    paused: false,
  };
  window.beerLive = live; // for the curious, and for the browser tests
  let delay = FIRST_DELAY;
  let timer = null;
  let reading = false;
  let readAgain = false;
  let changedIds = new Set();

  function show(state) {
    status.textContent = state;
    status.dataset.state = state;
  }

  function xsrfToken() {
    return document.querySelector('meta[name="xsrf-token"]').content;
  }

  async function feedToken() {
    const response = await fetch("/live/token", {
      method: "POST",
      headers: { "X-XSRFToken": xsrfToken() },
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error(`no token: ${response.status}`);
    return (await response.json()).token;
  }

  function feedAddress(token) {
    const options = new URLSearchParams({ feed: "websocket", since: String(live.lastSeq), token });
    if (watch === "beer") {
      options.set("filter", "_doc_ids"); // this one beer's changes, nothing else
      options.set("doc_ids", JSON.stringify([docId]));
    } else {
      options.set("include_docs", "true"); // to tell beers from the rest
    }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const database = encodeURIComponent(settee.database);
    return `${scheme}://${location.hostname}:${settee.setteePort}/${database}/_changes?${options}`;
  }

  function shown(id) {
    return [...section.querySelectorAll("[data-id]")].some((row) => row.dataset.id === id);
  }

  function concerns(row) {
    if (watch === "beer") return row.id === docId;
    if (row.deleted) return shown(row.id);
    const doc = row.doc || {};
    if (watch === "brewery") return doc.type === "beer" && (doc.brewery_id === docId || shown(row.id));
    return doc.type === "beer";
  }

  function flash() {
    const rows = [...section.querySelectorAll("[data-id]")].filter((row) => changedIds.has(row.dataset.id));
    for (const element of watch === "beer" ? [section] : rows) {
      element.classList.add("changed");
      setTimeout(() => element.classList.remove("changed"), 2000);
    }
    changedIds = new Set();
  }

  async function readPart() {
    if (reading) {
      readAgain = true;
      return;
    }
    reading = true;
    try {
      do {
        readAgain = false;
        const address = new URL(location.href);
        address.searchParams.set("part", "live");
        const response = await fetch(address, { credentials: "same-origin" });
        if (response.status === 404 && watch === "beer") {
          document.getElementById("gone").hidden = false;
          section.classList.add("gone");
        } else if (response.ok) {
          section.innerHTML = await response.text();
          flash();
        }
        live.updates += 1;
        section.dataset.updates = String(live.updates);
      } while (readAgain);
    } catch (error) {
      console.warn("could not read the page again:", error);
    } finally {
      reading = false;
    }
  }

  function received(event) {
    const frame = JSON.parse(event.data);
    if (!Array.isArray(frame) && "last_seq" in frame) {
      live.lastSeq = frame.last_seq; // caught up
      show("live");
      return;
    }
    let relevant = false;
    for (const row of Array.isArray(frame) ? frame : [frame]) {
      live.lastSeq = row.seq;
      if (concerns(row)) {
        changedIds.add(row.id);
        relevant = true;
      }
    }
    if (relevant) readPart();
  }

  function retry() {
    if (live.paused || timer !== null) return;
    show("reconnecting");
    timer = setTimeout(connect, delay);
    delay = Math.min(delay * 2, LONGEST_DELAY);
  }

  async function connect() {
    timer = null;
    if (live.paused || live.socket) return;
    show(live.connects ? "reconnecting" : "connecting");
    let socket;
    try {
      socket = new WebSocket(feedAddress(await feedToken()));
    } catch (error) {
      retry();
      return;
    }
    if (live.paused) {
      socket.close();
      return;
    }
    live.socket = socket;
    socket.onopen = () => {
      delay = FIRST_DELAY;
      live.connects += 1;
    };
    socket.onmessage = received;
    socket.onclose = (event) => {
      if (live.socket !== socket) return; // closed on purpose (paused)
      live.socket = null;
      if (event.code === 4003) show("not allowed");
      else retry();
    };
  }

  live.pause = () => {
    live.paused = true;
    clearTimeout(timer);
    timer = null;
    const socket = live.socket;
    live.socket = null;
    if (socket) socket.close();
    show("paused");
    toggle.textContent = "Resume live updates";
    toggle.setAttribute("aria-pressed", "false");
  };

  live.resume = () => {
    if (!live.paused) return;
    live.paused = false;
    toggle.textContent = "Pause live updates";
    toggle.setAttribute("aria-pressed", "true");
    connect();
  };

  toggle.addEventListener("click", () => (live.paused ? live.resume() : live.pause()));
  connect();
})();
