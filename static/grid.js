// The product grid's select-all box: ticks or clears every row box of the bulk form.
// Delegated from the document, so it keeps working after htmx swaps the rows in.
document.addEventListener("change", function (event) {
  var box = event.target;
  if (!box.classList || !box.classList.contains("select-all")) return;
  document.querySelectorAll('input[type="checkbox"][name="ids"][form="bulk"]').forEach(function (row) {
    row.checked = box.checked;
  });
});
