// Adds a paragraph after load: visible only when JavaScript runs.
document.addEventListener("DOMContentLoaded", function () {
  var p = document.createElement("p");
  p.id = "js-note";
  p.textContent = "This line was written by JavaScript.";
  var main = document.querySelector("main");
  if (main) main.appendChild(p);
});
