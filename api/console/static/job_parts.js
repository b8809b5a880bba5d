// The pieces of a finished (or running) job the prompt view and the job page both show.

import { facts, formatGb, formatNumber, formatSeconds, formatTime, h } from "./dom.js";

export function usageFacts(job) {
  const usage = job.usage;
  return facts([
    ["Prompt tokens", usage?.prompt_tokens],
    ["Completion tokens", usage?.completion_tokens],
    ["Total tokens", usage?.total_tokens],
    ["Finish reason", job.output?.finish_reason],
  ]);
}

// A job that asked for n > 1 samples: every choice's text and finish reason (the text shown above is choice 0's).
export function choiceList(job) {
  const choices = job.output?.choices;
  if (!choices?.length) return null;
  return h(
    "div",
    { class: "choices", id: "job-choices" },
    h("h3", {}, `Choices (${choices.length})`),
    choices.map((choice) =>
      h(
        "section",
        { class: "choice", dataset: { index: choice.index } },
        h("h4", {}, `Choice ${choice.index} · ${choice.finish_reason} · ${choice.completion_tokens} tokens`),
        h("pre", { class: "output" }, choice.text),
      ),
    ),
  );
}

export function timingFacts(job) {
  const metrics = job.metrics ?? {};
  return facts([
    ["Created", formatTime(job.created_at)],
    ["Started", formatTime(job.started_at)],
    ["Completed", formatTime(job.completed_at)],
    ["Waited in queue", formatSeconds(metrics.queue_seconds)],
    ["Time to first token", formatSeconds(metrics.time_to_first_token_seconds)],
    ["Generation", formatSeconds(metrics.generation_seconds)],
    ["Tokens/s", formatNumber(metrics.tokens_per_second)],
  ]);
}

// The worker's resource samples around the generation: before, after, and the peaks while it ran.
// A job's token logprobs (output.logprobs): each token, its logprob and the most likely alternatives.
export function logprobTable(records) {
  const shown = (token) => JSON.stringify(token);
  return h(
    "div",
    { class: "table-scroll" },
    h(
      "table",
      { class: "data", id: "answer-logprobs" },
      h("thead", {}, h("tr", {}, ["Token", "Logprob", "Most likely"].map((label) => h("th", {}, label)))),
      h(
        "tbody",
        {},
        records.map((record) =>
          h(
            "tr",
            {},
            h("td", {}, h("code", {}, shown(record.token))),
            h("td", {}, record.logprob === null ? "—" : record.logprob.toFixed(3)),
            h("td", {}, record.top.map((alt) => `${shown(alt.token)} ${alt.logprob.toFixed(3)}`).join(", ")),
          ),
        ),
      ),
    ),
  );
}

export function resourceTable(resources) {
  if (!resources) return h("p", { class: "muted" }, "No resource samples yet.");
  const row = (label, sample) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, label),
      h("td", {}, sample?.gpu ?? "—"),
      h("td", {}, formatGb(sample?.vram_allocated_gb)),
      h("td", {}, formatGb(sample?.vram_reserved_gb)),
      h("td", {}, sample ? `${formatGb(sample.ram_used_gb)} / ${formatGb(sample.ram_total_gb)} (${sample.ram_percent}%)` : "—"),
    );
  return h(
    "div",
    { class: "resources" },
    h(
      "div",
      { class: "table-scroll" },
      h(
        "table",
        { class: "data" },
        h("thead", {}, h("tr", {}, ["", "GPU", "VRAM allocated", "VRAM reserved", "RAM"].map((label) => h("th", {}, label)))),
        h("tbody", {}, row("Before", resources.before), row("After", resources.after)),
      ),
    ),
    facts([
      ["Peak VRAM allocated", formatGb(resources.peak_vram_allocated_gb)],
      ["Peak VRAM reserved", formatGb(resources.peak_vram_reserved_gb)],
      ["Jobs in the batch", resources.batch_size],
    ]),
  );
}
