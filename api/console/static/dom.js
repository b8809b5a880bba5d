// Building the page and formatting values. Every text that comes from a job (prompts, outputs, errors, logs) is
// set as text, never parsed as markup.

export function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name === "value") {
      if ("defaultValue" in element) element.defaultValue = value; // what a form reset goes back to
      element.value = value;
    }
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function clear(element, ...children) {
  element.replaceChildren(...children.flat(Infinity).filter((child) => child !== null && child !== undefined));
  return element;
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, dataset: { status } }, status);
}

export function shortId(id) {
  return id.replace(/^batch_/, "").slice(0, 8);
}

export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 90) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 90) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function formatNumber(value, digits = 1) {
  if (value === null || value === undefined) return "—";
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

export function formatGb(value) {
  return value === null || value === undefined ? "—" : `${Number(value).toFixed(2)} GB`;
}

// The input a job was given, in one line: the prompt, or the last chat turn.
export function inputExcerpt(input, length = 80) {
  if (!input) return "";
  const text = input.prompt ?? (input.messages?.length ? input.messages[input.messages.length - 1].content : "");
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

// A two-column table of label/value pairs; values may be nodes.
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(([, value]) => value !== undefined).map(([label, value]) => [h("dt", {}, label), h("dd", {}, value ?? "—")]),
  );
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Calls `tick` now and every `ms` while the view lives; returns the function that stops it. A tick never overlaps
// the previous one, so a slow answer never piles requests up.
export function every(ms, tick) {
  let stopped = false;
  let timer = null;
  const run = async () => {
    if (stopped) return;
    try {
      await tick();
    } catch (error) {
      console.warn(error);
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

export function errorBox(error) {
  const lines = error?.lines ?? [];
  return h(
    "div",
    { class: "error-box", role: "alert" },
    h("strong", {}, error?.type ? `${error.type}: ` : "Error: "),
    error?.message ?? String(error),
    lines.length ? h("ul", {}, lines.map((line) => h("li", {}, `line ${line.line}: ${line.message}`))) : null,
  );
}
