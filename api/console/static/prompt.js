// The prompt box: a prompt or chat turns and the sampling parameters (their ranges and explanations read from the
// API's own OpenAPI document), submitted as a job whose answer streams in token by token.

import { api } from "./api.js";
import { followJob } from "./events.js";
import { clear, errorBox, h, statusBadge } from "./dom.js";
import { choiceList, logprobTable, resourceTable, timingFacts, usageFacts } from "./job_parts.js";

// The fields the form offers, in order; `optional` ones are sent only when filled in.
const PARAMETERS = [
  { name: "max_tokens", label: "Max tokens", type: "integer", fallback: 128 },
  { name: "temperature", label: "Temperature", type: "number", step: "0.05", fallback: 0.7 },
  { name: "top_p", label: "Top p", type: "number", step: "0.05", fallback: 0.9 },
  { name: "do_sample", label: "Sample", type: "boolean", fallback: true },
  { name: "top_k", label: "Top k", type: "integer", optional: true },
  { name: "repetition_penalty", label: "Repetition penalty", type: "number", step: "0.05", optional: true },
  { name: "presence_penalty", label: "Presence penalty", type: "number", step: "0.1", optional: true },
  { name: "frequency_penalty", label: "Frequency penalty", type: "number", step: "0.1", optional: true },
  { name: "seed", label: "Seed", type: "integer", optional: true },
  { name: "n", label: "Choices (n)", type: "integer", optional: true },
  { name: "stop", label: "Stop strings (one per line)", type: "lines", optional: true },
  { name: "ignore_eos", label: "Ignore end of text", type: "boolean", fallback: false },
  { name: "logprobs", label: "Logprobs (alternatives per token)", type: "integer", optional: true },
];

let schemaPromise = null;

// The job body's schema from /openapi.json: the same descriptions and bounds the API validates with.
function jobSchema() {
  schemaPromise ??= fetch("/openapi.json")
    .then((response) => (response.ok ? response.json() : null))
    .then((document) => document?.components?.schemas?.GenerationInput?.properties ?? {})
    .catch(() => ({}));
  return schemaPromise;
}

function rangeText(property) {
  if (!property) return "";
  const low = property.minimum ?? property.exclusiveMinimum;
  const high = property.maximum ?? property.exclusiveMaximum;
  if (low === undefined && high === undefined) return "";
  const lowText = low === undefined ? "" : property.exclusiveMinimum !== undefined ? `> ${low}` : `≥ ${low}`;
  const highText = high === undefined ? "" : property.exclusiveMaximum !== undefined ? `< ${high}` : `≤ ${high}`;
  return `Range: ${[lowText, highText].filter(Boolean).join(" and ")}. `;
}

// Optional fields are `anyOf [{type, bounds}, {type: null}]` in the document: the bounds are in the first branch.
function bounded(property) {
  return property?.anyOf?.find((branch) => branch.type && branch.type !== "null") ?? property;
}

function parameterField(spec, property) {
  const bounds = bounded(property);
  const id = `param-${spec.name}`;
  const hint = h("small", { class: "hint" }, rangeText(bounds), property?.description ?? "");
  let input;
  if (spec.type === "boolean") {
    input = h("input", { id, name: spec.name, type: "checkbox", checked: spec.fallback ? true : null });
    return h("div", { class: "field check" }, h("label", { for: id }, input, ` ${spec.label}`), hint);
  }
  if (spec.type === "lines") {
    input = h("textarea", { id, name: spec.name, rows: 2 });
  } else {
    input = h("input", {
      id,
      name: spec.name,
      type: "number",
      inputmode: spec.type === "integer" ? "numeric" : "decimal",
      step: spec.step ?? "1",
      min: bounds?.minimum ?? bounds?.exclusiveMinimum,
      max: bounds?.maximum,
      value: spec.fallback,
      placeholder: spec.optional ? "not set" : null,
    });
  }
  return h("div", { class: "field" }, h("label", { for: id }, spec.label), input, hint);
}

// The response format: plain text, any JSON object, or JSON following the schema typed in (shown for that one).
function formatField(property) {
  const schema = h("textarea", {
    id: "param-json-schema",
    name: "json_schema",
    rows: 4,
    hidden: true,
    "aria-label": "JSON Schema",
    placeholder: '{"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}, "required": ["name"]}',
  });
  const select = h(
    "select",
    { id: "param-response-format", name: "response_format", onchange: () => (schema.hidden = select.value !== "json_schema") },
    ["text", "json_object", "json_schema"].map((kind) => h("option", { value: kind }, kind)),
  );
  const hint = h("small", { class: "hint" }, property?.description ?? "");
  return h("div", { class: "field" }, h("label", { for: select.id }, "Response format"), select, schema, hint);
}

function readFormat(form) {
  const kind = form.elements.response_format?.value ?? "text";
  if (kind === "text") return undefined;
  if (kind === "json_object") return { type: kind };
  let schema;
  try {
    schema = JSON.parse(form.elements.json_schema.value);
  } catch (error) {
    throw { type: "invalid_input", message: `the JSON Schema is not JSON: ${error.message}` };
  }
  return { type: kind, json_schema: { name: "console", schema } };
}

function chatTurn(role = "user", content = "") {
  const turn = h(
    "div",
    { class: "turn" },
    h(
      "select",
      { class: "turn-role", "aria-label": "Role" },
      ["system", "user", "assistant"].map((name) => h("option", { value: name, selected: name === role }, name)),
    ),
    h("textarea", { class: "turn-content", rows: 2, "aria-label": "Content" }, content),
    h("button", { type: "button", class: "link", onclick: () => turn.remove() }, "Remove"),
  );
  return turn;
}

function readBody(form) {
  const body = {};
  if (form.elements.mode.value === "chat") {
    body.messages = [...form.querySelectorAll(".turn")].map((turn) => ({
      role: turn.querySelector(".turn-role").value,
      content: turn.querySelector(".turn-content").value,
    }));
  } else {
    body.prompt = form.elements.prompt.value;
  }
  for (const spec of PARAMETERS) {
    const input = form.elements[spec.name];
    if (spec.type === "boolean") body[spec.name] = input.checked;
    else if (spec.type === "lines") {
      const lines = input.value.split("\n").filter((line) => line !== "");
      if (lines.length) body[spec.name] = lines;
    } else if (input.value !== "") body[spec.name] = Number(input.value);
    else if (!spec.optional) body[spec.name] = spec.fallback;
  }
  const format = readFormat(form);
  if (format) body.response_format = format;
  return body;
}

export function promptView(root) {
  const controller = new AbortController();
  const turns = h("div", { class: "turns" }, chatTurn("user"));
  const chatPart = h(
    "div",
    { class: "chat-part", hidden: true },
    turns,
    h("button", { type: "button", class: "secondary", onclick: () => turns.append(chatTurn("user")) }, "Add a turn"),
  );
  const promptPart = h(
    "div",
    { class: "field" },
    h("label", { for: "prompt-text" }, "Prompt"),
    h("textarea", { id: "prompt-text", name: "prompt", rows: 5, placeholder: "Hà Nội là thủ đô của nước nào?" }),
  );
  const parameters = h("div", { class: "parameters" });
  const submit = h("button", { type: "submit", id: "prompt-submit" }, "Generate");
  const form = h(
    "form",
    { id: "prompt-form", class: "card" },
    h("h2", {}, "Try a prompt"),
    h(
      "fieldset",
      { class: "mode" },
      h("legend", {}, "Input"),
      h("label", {}, h("input", { type: "radio", name: "mode", value: "prompt", checked: true }), " Prompt"),
      h("label", {}, h("input", { type: "radio", name: "mode", value: "chat" }), " Chat turns"),
    ),
    promptPart,
    chatPart,
    h("details", { open: true }, h("summary", {}, "Sampling"), parameters),
    h("div", { class: "actions" }, submit),
  );
  const answer = h("section", { id: "answer", class: "card", hidden: true });
  clear(root, form, answer);

  form.addEventListener("change", (event) => {
    if (event.target.name !== "mode") return;
    const chat = form.elements.mode.value === "chat";
    chatPart.hidden = !chat;
    promptPart.hidden = chat;
  });
  jobSchema().then((schema) => {
    clear(
      parameters,
      PARAMETERS.map((spec) => parameterField(spec, schema[spec.name])),
      formatField(schema.response_format),
    );
  });

  let running = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    running?.abort();
    running = new AbortController();
    controller.signal.addEventListener("abort", () => running.abort(), { once: true });
    submit.disabled = true;
    try {
      const job = await api("/jobs", { method: "POST", json: readBody(form) });
      showAnswer(answer, job, running.signal);
    } catch (error) {
      answer.hidden = false;
      clear(answer, h("h2", {}, "Answer"), errorBox(error));
    } finally {
      submit.disabled = false;
    }
  });
  return () => controller.abort();
}

// Streams the job's answer into the page, then shows its usage, timings and resource samples.
function showAnswer(section, job, signal) {
  const badge = h("span", { id: "answer-status" }, statusBadge(job.status));
  const text = document.createTextNode("");
  const cancel = h(
    "button",
    {
      type: "button",
      class: "secondary",
      id: "answer-cancel",
      onclick: async () => {
        cancel.disabled = true;
        try {
          await api(`/jobs/${job.id}/cancel`, { method: "POST" });
        } catch (error) {
          section.append(errorBox(error));
        }
      },
    },
    "Cancel",
  );
  const details = h("div", { id: "answer-details" });
  section.hidden = false;
  clear(
    section,
    h("h2", {}, "Answer ", badge),
    h("p", {}, "Job ", h("a", { href: `#/jobs/${job.id}`, id: "answer-job-link" }, job.id), " ", cancel),
    h("pre", { id: "answer-text", class: "output", dataset: { jobId: job.id } }, text),
    details,
  );
  followJob(job.id, {
    signal,
    onStatus: ({ status }) => {
      clear(badge, statusBadge(status));
      if (status === "queued") text.data = ""; // back on the queue (its worker died): it starts over
    },
    onToken: ({ text: delta }) => text.appendData(delta),
    onCompleted: (finished) => {
      clear(badge, statusBadge(finished.status));
      cancel.remove();
      // The stored text is the one that counts (a stop string may have cut the streamed tail).
      text.data = finished.output?.text ?? text.data;
      clear(
        details,
        finished.error ? errorBox(finished.error) : null,
        choiceList(finished),
        h("div", { class: "columns" }, h("section", {}, h("h3", {}, "Usage"), usageFacts(finished)), h("section", {}, h("h3", {}, "Timings"), timingFacts(finished))),
        h("h3", {}, "Resources"),
        resourceTable(finished.resources),
        finished.output?.logprobs ? [h("h3", {}, "Token logprobs"), logprobTable(finished.output.logprobs)] : null,
      );
    },
  }).catch((error) => details.append(errorBox(error)));
}
