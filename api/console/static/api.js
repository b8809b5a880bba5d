// The service's JSON API, called with the key this tab holds. A 401 asks for a key (once, however many requests
// are waiting for it) and retries; other errors become ApiError with the API's own type and message.

const KEY_STORAGE = "llm-console.api-key";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail?.message ?? `HTTP ${status}`);
    this.status = status;
    this.type = detail?.type ?? `http_${status}`;
    this.field = detail?.field;
    this.lines = detail?.lines;
  }

  static async from(response) {
    let detail = null;
    try {
      detail = (await response.json()).error;
    } catch {
      // not a JSON error body (a proxy's page, say): the status says enough
    }
    return new ApiError(response.status, detail);
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
}

export function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

let pendingKey = null;

// Shows the key dialog and resolves once a key was entered; concurrent callers share the one dialog.
export function askForKey(reason) {
  if (pendingKey) return pendingKey;
  const dialog = document.getElementById("key-dialog");
  const form = document.getElementById("key-form");
  const input = document.getElementById("key-input");
  document.getElementById("key-reason").textContent = apiKey()
    ? `The key was refused (${reason}). Enter another one.`
    : "This service needs an API key.";
  input.value = "";
  pendingKey = new Promise((resolve) => {
    const submitted = (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORAGE, key);
      form.removeEventListener("submit", submitted);
      dialog.close();
      pendingKey = null;
      document.dispatchEvent(new CustomEvent("api-key-changed"));
      resolve(key);
    };
    form.addEventListener("submit", submitted);
  });
  // Escape would close the dialog and leave every request waiting: the console can't do anything without a key.
  dialog.addEventListener("cancel", (event) => event.preventDefault(), { once: true });
  if (!dialog.open) dialog.showModal();
  input.focus();
  return pendingKey;
}

// Sends a request and answers the Response (any status but 401, which asks for a key and tries again).
export async function send(path, { method = "GET", json, body, headers = {}, signal } = {}) {
  for (;;) {
    const init = { method, headers: { ...authHeaders(), ...headers }, signal, cache: "no-store" };
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers["Content-Type"] = "application/json";
    } else if (body !== undefined) {
      init.body = body;
    }
    const response = await fetch(path, init);
    if (response.status !== 401) return response;
    const refusal = await ApiError.from(response);
    await askForKey(refusal.message);
  }
}

// Sends a request and answers its JSON body; a status of 400 or more throws ApiError.
export async function api(path, options) {
  const response = await send(path, options);
  if (!response.ok) throw await ApiError.from(response);
  return response.json();
}
