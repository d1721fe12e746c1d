// A button with data-copy="<input id>" copies that input's value to the clipboard and says so
// (its data-copied text) for two seconds. The button starts hidden: without this script the
// input is still there to select and copy by hand.
(function () {
  function copied(button) {
    var label = button.textContent;
    button.textContent = button.getAttribute("data-copied") || label;
    setTimeout(function () { button.textContent = label; }, 2000);
  }
  function copy(button) {
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input) { return; }
    input.focus();
    input.select();
    // navigator.clipboard exists only on https and localhost; execCommand covers plain http.
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(function () { copied(button); });
    } else if (document.execCommand("copy")) {
      copied(button);
    }
  }
  function init() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { copy(button); });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
