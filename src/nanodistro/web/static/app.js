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
    });
    document.getElementById("logout").addEventListener("click", () => {
      nd.setToken("");
      document.getElementById("login-result").textContent = "Token forgotten.";
    });
  }
});
