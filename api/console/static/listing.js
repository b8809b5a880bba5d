// A listing's card (the jobs, the batches): a table of one page of items, newest first, with Newer/Older buttons,
// refreshed live; an error shows above the table and the rows stay as they were.

import { api } from "./api.js";
import { clear, errorBox, every, h } from "./dom.js";
import { Pager } from "./pager.js";

const PAGE_SIZE = 20;
const REFRESH_MS = 2000;

// `path`: the listing's endpoint; `name`: the prefix of the table's ids (`${name}-table`, `-rows`, `-newer`,
// `-older`); `columns`: [label, class] pairs; `row(item, refresh)`: an item's row; `filters()`: the query's other
// parameters; `controls`: what stands in the toolbar after the title.
export function listing({ title, path, name, columns, empty, row, filters = () => ({}), controls = [] }) {
  const pager = new Pager();
  const rows = h("tbody", { id: `${name}-rows` });
  const problem = h("div");
  const newer = h("button", { type: "button", class: "secondary small", id: `${name}-newer` }, "← Newer");
  const older = h("button", { type: "button", class: "secondary small", id: `${name}-older` }, "Older →");
  const section = h(
    "section",
    { class: "card" },
    h("div", { class: "toolbar" }, h("h2", {}, title), controls, h("span", { class: "spacer" }), newer, older),
    problem,
    h(
      "div",
      { class: "table-scroll" },
      h(
        "table",
        { class: "data", id: `${name}-table` },
        h("thead", {}, h("tr", {}, columns.map(([label, kind]) => h("th", kind ? { class: kind } : {}, label)))),
        rows,
      ),
    ),
  );

  const refresh = async () => {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE), ...filters() });
    if (pager.cursor) query.set("cursor", pager.cursor);
    let page;
    try {
      page = await api(`${path}?${query}`);
      clear(problem);
    } catch (error) {
      clear(problem, errorBox(error));
      return;
    }
    pager.seen(page.next_cursor);
    newer.disabled = !pager.hasNewer;
    older.disabled = !pager.hasOlder;
    clear(
      rows,
      page.data.length
        ? page.data.map((item) => row(item, refresh))
        : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, empty)),
    );
  };
  newer.addEventListener("click", () => pager.newer() && refresh());
  older.addEventListener("click", () => pager.older() && refresh());

  return {
    section,
    refresh,
    // Back to the first (newest) page, as after a new filter or upload.
    firstPage: () => {
      pager.reset();
      return refresh();
    },
    // Refresh now and every REFRESH_MS; returns the function that stops it.
    live: () => every(REFRESH_MS, refresh),
  };
}
