// The jobs table (newest first, filtered by status, paged, refreshed live) and a job's own page.

import { api } from "./api.js";
import { followJob } from "./events.js";
import {
  clear,
  errorBox,
  facts,
  formatNumber,
  formatSeconds,
  formatTime,
  h,
  inputExcerpt,
  shortId,
  statusBadge,
} from "./dom.js";
import { choiceList, resourceTable, timingFacts, usageFacts } from "./job_parts.js";
import { listing } from "./listing.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "canceled"];
const CANCELABLE = new Set(["queued", "running"]);

function cancelButton(job, onDone) {
  const button = h(
    "button",
    {
      type: "button",
      class: "secondary small cancel",
      dataset: { jobId: job.id },
      onclick: async () => {
        button.disabled = true;
        try {
          await api(`/jobs/${job.id}/cancel`, { method: "POST" });
        } catch (error) {
          button.replaceWith(errorBox(error));
        }
        onDone?.();
      },
    },
    "Cancel",
  );
  return button;
}

export function jobsView(root, params) {
  let status = params.get("status") ?? "";
  const filter = h(
    "select",
    { id: "jobs-status", "aria-label": "Status" },
    h("option", { value: "" }, "All statuses"),
    STATUSES.map((name) => h("option", { value: name, selected: name === status }, name)),
  );
  const jobs = listing({
    title: "Jobs",
    path: "/jobs",
    name: "jobs",
    columns: [
      ["Job"],
      ["Status"],
      ["Created", "wide-only"],
      ["Input"],
      ["Tokens", "wide-only"],
      ["Generation", "wide-only"],
      [""],
    ],
    empty: "No jobs.",
    row: jobRow,
    filters: () => (status ? { status } : {}),
    controls: [filter],
  });
  clear(root, jobs.section);
  filter.addEventListener("change", () => {
    status = filter.value;
    jobs.firstPage();
  });
  return jobs.live();
}

function jobRow(job, refresh) {
  return h(
    "tr",
    { dataset: { jobId: job.id, status: job.status } },
    h("td", {}, h("a", { href: `#/jobs/${job.id}`, class: "mono", title: job.id }, shortId(job.id))),
    h("td", {}, statusBadge(job.status)),
    h("td", { class: "wide-only" }, formatTime(job.created_at)),
    h("td", { class: "excerpt" }, inputExcerpt(job.input)),
    h("td", { class: "num wide-only" }, job.usage ? job.usage.completion_tokens : "—"),
    h("td", { class: "num wide-only" }, formatSeconds(job.metrics?.generation_seconds)),
    h("td", {}, CANCELABLE.has(job.status) ? cancelButton(job, refresh) : null),
  );
}

export function jobView(root, jobId) {
  const controller = new AbortController();
  const body = h("div", { id: "job-page", dataset: { jobId } }, h("p", { class: "muted" }, "Loading…"));
  clear(root, h("p", {}, h("a", { href: "#/jobs" }, "← All jobs")), body);
  let streamText = null;
  let streamed = ""; // the tokens so far: a redraw while the job runs shows them again
  let following = false;

  const render = (job) => {
    const output = h("pre", { class: "output", id: "job-output" }, job.output?.text ?? "");
    streamText = null;
    clear(
      body,
      h(
        "section",
        { class: "card" },
        h(
          "div",
          { class: "toolbar" },
          h("h2", { class: "mono" }, `Job ${job.id}`),
          h("span", { id: "job-status" }, statusBadge(job.status)),
          h("span", { class: "spacer" }),
          CANCELABLE.has(job.status) ? cancelButton(job, load) : null,
        ),
        h("div", { class: "columns" }, h("section", {}, h("h3", {}, "Timings"), timingFacts(job)), h("section", {}, h("h3", {}, "Usage"), usageFacts(job))),
      ),
      h("section", { class: "card" }, h("h3", {}, "Input"), inputBlock(job)),
      h("section", { class: "card" }, h("h3", {}, "Output"), output, choiceList(job), job.error ? errorBox(job.error) : null),
      h("section", { class: "card" }, h("h3", {}, "Resources"), resourceTable(job.resources), logBlock(job.logs)),
      h("section", { class: "card" }, h("h3", {}, "Webhook"), webhookBlock(job.webhook)),
      h("section", { class: "card" }, h("h3", {}, "More"), otherFacts(job)),
    );
    if (CANCELABLE.has(job.status)) {
      streamText = document.createTextNode(streamed);
      clear(output, streamText);
      follow();
    }
  };

  // While the job runs, its tokens stream into the output; every status change redraws the page from the API.
  const follow = () => {
    if (following) return;
    following = true;
    followJob(jobId, {
      signal: controller.signal,
      onStatus: ({ status }) => {
        if (status === "queued") streamed = ""; // back on the queue (its worker died): it starts over
        load();
      },
      onToken: ({ text }) => {
        streamed += text;
        streamText?.appendData(text);
      },
      onCompleted: (job) => render(job),
    })
      .catch((error) => body.append(errorBox(error)))
      .finally(() => {
        following = false;
      });
  };

  async function load() {
    try {
      const job = await api(`/jobs/${jobId}`, { signal: controller.signal });
      if (!controller.signal.aborted) render(job);
    } catch (error) {
      if (!controller.signal.aborted) clear(body, errorBox(error));
    }
  }
  load();
  return () => controller.abort();
}

function inputBlock(job) {
  const input = job.input ?? {};
  const { prompt, messages, ...parameters } = input;
  const text = messages
    ? h(
        "ol",
        { class: "turns-shown" },
        messages.map((message) => h("li", {}, h("strong", {}, `${message.role}: `), h("span", { class: "pre" }, message.content))),
      )
    : h("pre", { class: "output" }, prompt ?? "");
  return [text, facts(Object.entries(parameters).map(([name, value]) => [name, JSON.stringify(value)]))];
}

function logBlock(logs) {
  if (!logs?.length) return h("p", { class: "muted" }, "No resource log lines yet.");
  return [h("h4", {}, "Resource log"), h("pre", { class: "log", id: "job-logs" }, logs.join("\n"))];
}

function webhookBlock(webhook) {
  if (!webhook) return h("p", { class: "muted" }, "No webhook.");
  const deliveries = webhook.deliveries ?? [];
  return [
    facts([
      ["URL", h("span", { class: "mono" }, webhook.url)],
      ["Events", webhook.events.join(", ")],
      ...Object.entries(webhook.state ?? {}).map(([event, state]) => [`${event}`, state]),
    ]),
    deliveries.length
      ? h(
          "div",
          { class: "table-scroll" },
          h(
            "table",
            { class: "data", id: "job-deliveries" },
            h("thead", {}, h("tr", {}, ["Event", "Attempt", "At", "Answer", "Delivery id"].map((label) => h("th", {}, label)))),
            h(
              "tbody",
              {},
              deliveries.map((attempt) =>
                h(
                  "tr",
                  {},
                  h("td", {}, attempt.event),
                  h("td", { class: "num" }, attempt.attempt),
                  h("td", {}, formatTime(attempt.at)),
                  h("td", {}, attempt.status_code ?? attempt.error ?? "—"),
                  h("td", { class: "mono" }, attempt.webhook_id),
                ),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No delivery attempt yet."),
  ];
}

function otherFacts(job) {
  return facts([
    ["Priority", job.priority],
    ["Attempts", formatNumber(job.attempts, 0)],
    ["Worker", job.worker],
    ["Batch", job.batch_id ? h("a", { href: "#/batches" }, job.batch_id) : undefined],
    ["Custom id", job.custom_id ?? undefined],
    ["Metadata", job.metadata && Object.keys(job.metadata).length ? JSON.stringify(job.metadata) : undefined],
  ]);
}
