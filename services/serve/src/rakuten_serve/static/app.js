// Web page logic. The access token lives only in this closure's memory: never in a URL,
// never in localStorage or a cookie; reloading the page logs the user out.
(() => {
  "use strict";
  let token = null;
  const $ = (id) => document.getElementById(id);

  function showError(el, payload, fallback) {
    let msg = fallback;
    if (payload && payload.detail) {
      msg = Array.isArray(payload.detail)
        ? payload.detail.map((d) => `${d.field}: ${d.message}`).join("; ")
        : String(payload.detail);
    }
    el.textContent = msg;
    el.className = "error";
  }

  async function readJson(response) {
    try { return await response.json(); } catch (e) { return null; }
  }

  async function login(event) {
    event.preventDefault();
    const status = $("login-status");
    status.textContent = "Connexion…";
    status.className = "";
    const body = new URLSearchParams();
    body.set("username", $("username").value);
    body.set("password", $("password").value);
    const response = await fetch("/token", { method: "POST", body });
    const payload = await readJson(response);
    $("password").value = "";
    if (!response.ok) {
      showError(status, payload, `Échec de la connexion (${response.status})`);
      return;
    }
    token = payload.access_token;
    status.textContent = "";
    $("whoami").textContent = $("username").value;
    $("login-section").hidden = true;
    $("predict-section").hidden = false;
  }

  function logout() {
    token = null;
    $("predict-section").hidden = true;
    $("result").hidden = true;
    $("login-section").hidden = false;
  }

  function renderResult(payload) {
    const tbody = $("top-table").querySelector("tbody");
    tbody.replaceChildren();
    for (const item of payload.top_k) {
      const row = document.createElement("tr");
      const code = document.createElement("td");
      code.textContent = String(item.prdtypecode);
      const name = document.createElement("td");
      name.textContent = item.name_fr;
      name.title = item.name_en;
      const prob = document.createElement("td");
      prob.className = "prob";
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${Math.round(item.probability * 100)}px`;
      prob.append(bar, `${(item.probability * 100).toFixed(1)} %`);
      row.append(code, name, prob);
      tbody.append(row);
    }
    $("model-version").textContent = `${payload.model_name} ${payload.model_version}`;
    $("request-id").textContent = payload.request_id;
    $("result").hidden = false;
  }

  async function predict(event) {
    event.preventDefault();
    const status = $("predict-status");
    if (!token) { logout(); return; }
    status.textContent = "Prédiction…";
    status.className = "";
    const form = new FormData();
    form.set("designation", $("designation").value);
    const description = $("description").value;
    if (description.trim()) form.set("description", description);
    const file = $("image").files[0];
    if (file) form.set("image", file);
    const response = await fetch("/predict", {
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
      body: form,
    });
    const payload = await readJson(response);
    if (response.status === 401) {
      logout();
      showError($("login-status"), payload, "Session expirée, reconnectez-vous");
      return;
    }
    if (!response.ok) {
      $("result").hidden = true;
      showError(status, payload, `Erreur ${response.status}`);
      return;
    }
    status.textContent = "";
    renderResult(payload);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", login);
    $("predict-form").addEventListener("submit", predict);
    $("logout-button").addEventListener("click", logout);
  });
})();
