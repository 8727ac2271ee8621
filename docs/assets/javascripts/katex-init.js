// Render the maths that pymdownx.arithmatex (generic mode) leaves as \( ... \) and \[ ... \] in
// <span class="arithmatex"> / <div class="arithmatex">, with the KaTeX shipped in assets/katex/.
// document$ is Material's page observable: it fires on the first load and after every instant navigation.
function renderDiscogradMath(root) {
  root.querySelectorAll(".arithmatex").forEach(function (element) {
    renderMathInElement(element, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  });
}
if (typeof document$ !== "undefined") {
  document$.subscribe(function ({ body }) { renderDiscogradMath(body); });
} else {
  document.addEventListener("DOMContentLoaded", function () { renderDiscogradMath(document.body); });
}
