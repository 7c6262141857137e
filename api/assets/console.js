// Wharf console: small progressive enhancement. Every page works without this script; with
// it, live parts refresh themselves, campaign progress streams over SSE, and "select all"
// boxes work.
"use strict";

// <div data-live-url="/console/..." data-live-every="5">: swap in fresh HTML every N seconds
// while the tab is visible.
function startLiveRegions() {
  document.querySelectorAll("[data-live-url]").forEach((el) => {
    const every = Math.max(1, Number(el.dataset.liveEvery || 5)) * 1000;
    const refresh = async () => {
      if (document.hidden) return;
      try {
        const res = await fetch(el.dataset.liveUrl, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (res.ok) el.innerHTML = await res.text();
      } catch (_) { /* the next tick tries again */ }
    };
    setInterval(refresh, every);
  });
}

// <section data-sse-url="/console/.../events">: each event is JSON; every key names an
// element [data-field=key] whose text (or <progress> value) it sets.
function startStreams() {
  document.querySelectorAll("[data-sse-url]").forEach((el) => {
    const source = new EventSource(el.dataset.sseUrl);
    source.onmessage = (event) => {
      let data;
      try { data = JSON.parse(event.data); } catch (_) { return; }
      for (const [key, value] of Object.entries(data)) {
        el.querySelectorAll(`[data-field="${key}"]`).forEach((target) => {
          if (target.tagName === "PROGRESS") target.value = Number(value);
          else target.textContent = String(value);
        });
      }
      if (data.final) source.close();
    };
  });
}

// <input type="checkbox" data-select-all="name">: ticks every box called `name` in its form.
function startSelectAll() {
  document.querySelectorAll("[data-select-all]").forEach((box) => {
    box.addEventListener("change", () => {
      const form = box.form || document;
      form.querySelectorAll(`input[type=checkbox][name="${box.dataset.selectAll}"]`)
        .forEach((b) => { b.checked = box.checked; });
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  startLiveRegions();
  startStreams();
  startSelectAll();
});
