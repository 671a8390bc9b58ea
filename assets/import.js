// The OpenAPI import's operation picker: filter the operations as you type, tick a whole tag, select or
// clear what is shown, and keep count. The checkboxes are the form itself: without this script every
// operation can still be ticked by hand.
const rowsOf = (picker) => [...picker.querySelectorAll("[data-testid=import-operation]")];
const box = (row) => row.querySelector("input[name=operation]");
const tagsOf = (row) => (row.tags ??= JSON.parse(row.dataset.tags || "[]"));

function recount(picker) {
  const rows = rowsOf(picker);
  const total = new Map(), ticked = new Map();
  let chosen = 0, shown = 0;
  for (const row of rows) {
    const on = box(row).checked;
    chosen += on; shown += !row.hidden;
    for (const tag of tagsOf(row)) {
      total.set(tag, (total.get(tag) || 0) + 1);
      if (on) ticked.set(tag, (ticked.get(tag) || 0) + 1);
    }
  }
  for (const input of picker.querySelectorAll("input[data-tag]")) {
    const on = ticked.get(input.dataset.tag) || 0;
    input.checked = on > 0 && on === total.get(input.dataset.tag);
    input.indeterminate = on > 0 && !input.checked;
  }
  picker.querySelector("[data-testid=import-count]").textContent =
    `${chosen} of ${rows.length} selected · ${shown} shown`;
}

document.addEventListener("input", (event) => {
  const picker = event.target.closest("[data-testid=import-picker]");
  if (!picker || !event.target.matches("[data-testid=import-filter]")) return;
  const words = event.target.value.toLowerCase().split(/\s+/).filter(Boolean);
  for (const row of rowsOf(picker)) row.hidden = !words.every((word) => row.dataset.search.includes(word));
  recount(picker);
});

document.addEventListener("change", (event) => {
  const picker = event.target.closest("[data-testid=import-picker]");
  if (!picker) return;
  if (event.target.matches("input[data-tag]")) {
    for (const row of rowsOf(picker)) {
      if (tagsOf(row).includes(event.target.dataset.tag)) box(row).checked = event.target.checked;
    }
  }
  recount(picker);
});

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-pick]");
  const picker = button && button.closest("[data-testid=import-picker]");
  if (!picker) return;
  for (const row of rowsOf(picker)) if (!row.hidden) box(row).checked = button.dataset.pick === "shown";
  recount(picker);
});
