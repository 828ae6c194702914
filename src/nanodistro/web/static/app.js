// nanodistro console: triggers posted with the browser's token, logs followed as server-sent
// events. Vanilla JS, no build step; everything it loads comes from this server.
"use strict";

const nd = {
  token() { return localStorage.getItem("nanodistro-token") || ""; },

  setToken(value) {
    if (value) {
      localStorage.setItem("nanodistro-token", value);
      // read by the server for pages when [serve] public-reads = false
      document.cookie = "nanodistro_token=" + encodeURIComponent(value) + "; path=/; SameSite=Strict";
    } else {
      localStorage.removeItem("nanodistro-token");
      document.cookie = "nanodistro_token=; path=/; max-age=0; SameSite=Strict";
    }
    nd.showTokenStatus();
  },

  showTokenStatus() {
    const status = document.getElementById("token-status");
    if (status) status.textContent = nd.token() ? "signed in" : "sign in";
  },

  flash(message, kind) {
    const box = document.getElementById("flash");
    if (!box) return;
    box.textContent = message;
    box.className = "flash " + (kind || "info");
    box.hidden = false;
  },

  // POST JSON with the token; resolves to the parsed answer, rejects with the server's reason
  async post(url, body) {
    const headers = { "Content-Type": "application/json" };
    if (nd.token()) headers.Authorization = "Bearer " + nd.token();
    const response = await fetch(url, {
      method: "POST", headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    let answer = null;
    try { answer = await response.json(); } catch (_) { /* empty body */ }
    if (!response.ok) {
      const reason = answer && answer.detail ? answer.detail : response.statusText;
      throw new Error(response.status + ": " + (typeof reason === "string" ? reason : JSON.stringify(reason)));
    }
    return answer;
  },

  // Append each line of an SSE log stream to <pre> `target`; onEnd() once the producer is done.
  follow(url, target, onEnd) {
    const source = new EventSource(url);
    source.addEventListener("line", (event) => {
      const atBottom = target.scrollTop + target.clientHeight >= target.scrollHeight - 4;
      target.append(event.data + "\n");
      if (atBottom) target.scrollTop = target.scrollHeight;
    });
    source.addEventListener("end", () => { source.close(); if (onEnd) onEnd(); });
    source.onerror = () => { /* EventSource reconnects by itself; the server resends from 0 */ };
    return source;
  },
};

// <button data-post="/api/..." [data-body='{"k":1}'] [data-confirm="..."] [data-follow="run"]>
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-post]");
  if (!button) return;
  event.preventDefault();
  if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
  if (!nd.token()) { nd.flash("Sign in with an API token first (nanodistro token create NAME).", "error"); return; }
  button.disabled = true;
  try {
    const body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
    const answer = await nd.post(button.dataset.post, body);
    if (button.dataset.follow === "run" && answer && answer.id !== undefined) {
      window.location.href = "/runs/" + answer.id;
      return;
    }
    nd.flash("Done.", "info");
  } catch (error) {
    nd.flash(error.message, "error");
  } finally {
    button.disabled = false;
  }
});

document.addEventListener("DOMContentLoaded", () => {
  nd.showTokenStatus();
  const form = document.getElementById("login-form");
  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      nd.setToken(document.getElementById("token-input").value.trim());
      document.getElementById("login-result").textContent = "Token saved in this browser.";
      // back to the page that sent us here (a same-site path only)
      const next = new URLSearchParams(window.location.search).get("next");
      if (next && next.startsWith("/") && !next.startsWith("//")) window.location.href = next;
    });
    document.getElementById("logout").addEventListener("click", () => {
      nd.setToken("");
      document.getElementById("login-result").textContent = "Token forgotten.";
    });
  }
});

// ---- run and job pages (pages_images.py): live state, live log, then the outcome ----------

// <select data-autosubmit> submits its form when changed (the image page's diff selects)
document.addEventListener("change", (event) => {
  const select = event.target.closest("select[data-autosubmit]");
  if (select && select.form) select.form.submit();
});

nd.get = async (url) => {
  const headers = {};
  if (nd.token()) headers.Authorization = "Bearer " + nd.token();
  const response = await fetch(url, { headers });
  if (!response.ok) throw new Error(response.status + " " + response.statusText);
  return response.json();
};

nd.el = (tag, text, attrs) => {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
};

// The outcome of a run (cycle summary, promotion, rollback) or a job, as DOM (never innerHTML).
nd.renderOutcome = (box, item) => {
  box.replaceChildren();
  const done = item.state === "succeeded" || item.state === "failed";
  box.hidden = !done;
  if (!done) return;
  const head = nd.el("p");
  head.append(nd.el("span", item.state, { class: "badge " + item.state, id: "outcome-state" }));
  const result = item.result || {};
  if (result.status) {
    head.append(" ", nd.el("span", result.status, { class: "badge " + result.status, id: "outcome-status" }));
  }
  if (result.seconds !== undefined) head.append(" ", nd.el("span", result.seconds + " s", { class: "muted" }));
  box.append(head);
  if (item.error) box.append(nd.el("pre", item.error, { class: "flash error", id: "outcome-error" }));
  const list = (title, entries, id) => {
    if (!entries.length) return;
    box.append(nd.el("h3", title));
    const ul = nd.el("ul", null, { id });
    for (const node of entries) { const li = nd.el("li"); li.append(...node); ul.append(li); }
    box.append(ul);
  };
  const link = (href, text) => nd.el("a", text, { href });
  list("Bumps", (result.bumps || []).map((b) => [
    link("/packages/" + encodeURIComponent(b.recipe), b.recipe), " " + (b.old || "?") + " → " + (b.new || "?") + (b.status ? " (" + b.status + ")" : ""),
  ]), "outcome-bumps");
  list("Builds", Object.entries(result.builds || {}).map(([recipe, status]) => [
    link("/packages/" + encodeURIComponent(recipe), recipe), " ", nd.el("span", status, { class: "badge " + status }),
  ]), "outcome-builds");
  const images = result.changed_images || result.images || {};
  list("Images", Object.entries(images).map(([name, digest]) => [
    link("/images/" + encodeURIComponent(name), name), nd.el("span", " " + String(digest).slice(0, 19), { class: "mono muted" }),
  ]), "outcome-images");
  list("Gate", (result.gate_reasons || []).map((r) => [String(r)]), "outcome-gate");
  list("Notes", (result.notes || []).map((n) => [String(n)]), "outcome-notes");
  if (!result.status && !result.builds && Object.keys(result).length) {
    box.append(nd.el("pre", JSON.stringify(result, null, 2), { class: "mono" }));
  }
};

// opts: {api, initial, state, log, result}: show the state as it changes, append the log as it
// grows, and once the stream ends fetch the item again for its final state and outcome.
nd.watch = (opts) => {
  const show = (item) => {
    opts.state.textContent = item.state;
    opts.state.className = "badge " + item.state;
    opts.state.dataset.state = item.state;
    nd.renderOutcome(opts.result, item);
  };
  show(opts.initial);
  let ended = false;
  const poll = async () => {
    if (ended) return;
    try { const item = await nd.get(opts.api); if (!ended) show(item); } catch (_) { /* retried */ }
    if (!ended) setTimeout(poll, 1500);
  };
  setTimeout(poll, 1500);
  nd.follow(opts.initial.log_url, opts.log, async () => {
    ended = true;
    for (let attempt = 0; attempt < 5; attempt++) {
      try { show(await nd.get(opts.api)); return; } catch (_) { await new Promise((r) => setTimeout(r, 500)); }
    }
  });
};
