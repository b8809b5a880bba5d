// Batches: upload a file to start one, and every batch with its progress (done/failed/total, tokens/s, ETA),
// refreshed live, with its results file and a cancel button.

import { api, send, ApiError } from "./api.js";
import { batchBody } from "./batch_files.js";
import { clear, errorBox, formatNumber, formatSeconds, formatTime, h, shortId, statusBadge } from "./dom.js";
import { listing } from "./listing.js";

export function batchesView(root) {
  const uploadResult = h("div", { id: "upload-result" });
  const form = h(
    "form",
    { class: "card", id: "upload-form" },
    h("h2", {}, "Start a batch"),
    h(
      "div",
      { class: "field" },
      h("label", { for: "batch-file" }, "File"),
      h("input", { id: "batch-file", name: "file", type: "file", accept: ".jsonl,.ndjson,.json,.csv,.txt,text/plain", required: true }),
      h(
        "small",
        { class: "hint" },
        "JSONL of {\"custom_id\", \"body\"} lines (or a JSON list of them), a CSV with a prompt column (and optionally custom_id), or a text file with one prompt per line.",
      ),
    ),
    h(
      "div",
      { class: "field" },
      h("label", { for: "batch-max-tokens" }, "Max tokens (CSV and text lines)"),
      h("input", { id: "batch-max-tokens", name: "max_tokens", type: "number", min: 1, value: 64 }),
    ),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "batch-upload" }, "Upload and start")),
    uploadResult,
  );
  const batches = listing({
    title: "Batches",
    path: "/batches",
    name: "batch",
    columns: [["Batch"], ["Status"], ["Created", "wide-only"], ["Progress"], ["Tokens/s"], ["ETA"], [""]],
    empty: "No batches.",
    row: batchRow,
  });
  clear(root, form, batches.section);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.elements.file.files[0];
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const maxTokens = Number(form.elements.max_tokens.value);
      const { body, contentType } = await batchBody(file, maxTokens ? { max_tokens: maxTokens } : {});
      const batch = await api("/batches", { method: "POST", body, headers: { "Content-Type": contentType } });
      clear(uploadResult, h("p", {}, "Started ", h("span", { class: "mono" }, batch.id), ` with ${batch.total} lines.`));
      form.reset();
      await batches.firstPage();
    } catch (error) {
      clear(uploadResult, errorBox(error instanceof ApiError ? error : { message: error.message }));
    } finally {
      button.disabled = false;
    }
  });
  return batches.live();
}

function progressBar(batch) {
  const { succeeded, failed, canceled } = batch.counts;
  const part = (count, kind) => {
    const segment = h("span", { class: `segment ${kind}`, title: `${count} ${kind}` });
    segment.style.width = `${batch.total ? (100 * count) / batch.total : 0}%`;
    return segment;
  };
  const done = succeeded + failed + canceled;
  return h(
    "div",
    { class: "progress-cell" },
    h(
      "div",
      { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": batch.total, "aria-valuenow": done },
      part(succeeded, "succeeded"),
      part(failed, "failed"),
      part(canceled, "canceled"),
    ),
    h(
      "span",
      { class: "progress-text" },
      h("span", { class: "done-total" }, `${done}/${batch.total}`),
      failed ? ` · ${failed} failed` : "",
      canceled ? ` · ${canceled} canceled` : "",
      batch.counts.running ? ` · ${batch.counts.running} running` : "",
    ),
  );
}

function batchRow(batch, refresh) {
  const open = batch.status === "queued" || batch.status === "running";
  return h(
    "tr",
    { dataset: { batchId: batch.id, status: batch.status } },
    h("td", {}, h("span", { class: "mono", title: batch.id }, shortId(batch.id))),
    h("td", {}, statusBadge(batch.status)),
    h("td", { class: "wide-only" }, formatTime(batch.created_at)),
    h("td", {}, progressBar(batch)),
    h("td", { class: "num" }, formatNumber(batch.tokens_per_second)),
    h("td", { class: "num" }, open ? formatSeconds(batch.eta_seconds) : "—"),
    h(
      "td",
      { class: "row-actions" },
      h("button", { type: "button", class: "secondary small results", onclick: () => downloadResults(batch) }, "Results"),
      open
        ? h(
            "button",
            {
              type: "button",
              class: "secondary small",
              onclick: async () => {
                await api(`/batches/${batch.id}/cancel`, { method: "POST" });
                refresh();
              },
            },
            "Cancel",
          )
        : null,
    ),
  );
}

// The results file is fetched with the key (a plain link could not send it) and handed to the browser to save.
async function downloadResults(batch) {
  const response = await send(`/batches/${batch.id}/results`);
  if (!response.ok) throw await ApiError.from(response);
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: `${batch.id}.results.jsonl` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
