// A file picked in the browser, as the body of POST /batches: JSONL and JSON go as they are; a CSV with a
// `prompt` column (and optionally `custom_id`) or a text file with one prompt per line becomes JSONL, as
// scripts/submit_batch.py reads them.

export async function batchBody(file, defaults) {
  const text = (await file.text()).replace(/^\uFEFF/, "");
  const name = file.name.toLowerCase();
  const first = text.trimStart()[0];
  if (name.endsWith(".csv")) return jsonl(csvLines(text, defaults));
  if (first === "[") return { body: text, contentType: "application/json", lines: null };
  if (name.endsWith(".jsonl") || name.endsWith(".ndjson") || first === "{") {
    return { body: text, contentType: "application/jsonl", lines: null };
  }
  const lines = text
    .split(/\r?\n/)
    .map((line, index) => [line, index + 1])
    .filter(([line]) => line.trim() !== "")
    .map(([line, number]) => ({ custom_id: `line-${number}`, body: { ...defaults, prompt: line } }));
  return jsonl(lines);
}

function jsonl(lines) {
  return {
    body: lines.map((line) => JSON.stringify(line)).join("\n") + "\n",
    contentType: "application/jsonl",
    lines: lines.length,
  };
}

function csvLines(text, defaults) {
  const [header, ...rows] = parseCsv(text);
  const promptColumn = header?.indexOf("prompt") ?? -1;
  if (promptColumn < 0) throw new Error("the CSV has no `prompt` column");
  const idColumn = header.indexOf("custom_id");
  return rows
    .filter((row) => row.some((cell) => cell !== ""))
    .map((row, index) => ({
      custom_id: (idColumn >= 0 && row[idColumn]) || `row-${index + 1}`,
      body: { ...defaults, prompt: row[promptColumn] ?? "" },
    }));
}

// RFC 4180: fields separated by commas, optionally quoted; a quoted field may hold commas, newlines and "" for ".
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        field += '"';
        i += 1;
      } else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"') quoted = true;
    else if (char === ",") {
      row.push(field);
      field = "";
    } else if (char === "\n" || char === "\r") {
      if (char === "\r" && text[i + 1] === "\n") i += 1;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += char;
  }
  if (field !== "" || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}
