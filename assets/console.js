// The console's few keys and its alert area; everything else is htmx and server-rendered HTML.
// "/" goes to the search box (or the page's first field), Escape leaves it; a new request clears the
// alert of the last one.
document.addEventListener("keydown", (event) => {
  const typing = event.target.closest("input, textarea, select, [contenteditable=true]");
  if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
    const field = document.querySelector("[data-testid=server-search], main input:not([type=hidden])");
    if (field) { event.preventDefault(); field.focus(); field.select(); }
  } else if (event.key === "Escape" && typing && typing.matches("[type=search]")) {
    typing.value = ""; typing.dispatchEvent(new Event("input", { bubbles: true })); typing.blur();
  }
});
document.addEventListener("htmx:beforeRequest", () => {
  const flash = document.getElementById("flash");
  if (flash) flash.replaceChildren();
});
