// The console's router: the part of the URL after # picks the view; leaving a view stops its refreshes and streams.

import { apiKey, forgetKey } from "./api.js";
import { batchesView } from "./batches.js";
import { chartsView } from "./charts.js";
import { jobView, jobsView } from "./jobs.js";
import { promptView } from "./prompt.js";

const ROUTES = [
  [/^\/jobs\/([0-9a-f]{32})$/, "jobs", (root, match) => jobView(root, match[1])],
  [/^\/jobs$/, "jobs", (root, _match, params) => jobsView(root, params)],
  [/^\/batches$/, "batches", (root) => batchesView(root)],
  [/^\/charts$/, "charts", (root) => chartsView(root)],
  [/^\/?$/, "prompt", (root) => promptView(root)],
];

let stopView = () => {};

function route() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const root = document.getElementById("view");
  stopView();
  for (const [pattern, name, show] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.view === name);
    stopView = show(root, match, new URLSearchParams(query)) ?? (() => {});
    return;
  }
  location.hash = "#/";
}

function showKeyButton() {
  document.getElementById("forget-key").hidden = !apiKey();
}

document.getElementById("forget-key").addEventListener("click", () => {
  forgetKey();
  location.reload();
});
document.addEventListener("api-key-changed", showKeyButton);
window.addEventListener("hashchange", route);
showKeyButton();
route();
