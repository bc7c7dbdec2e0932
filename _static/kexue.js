// kexue-notes: mark every inline formula wider than its line with the class kx-wide, so that
// kexue.css lets it scroll in its own box (MathJax 3 cannot break inline formulas). Runs when
// MathJax has typeset the page and again whenever the window is resized.
(function () {
  function mark() {
    for (const m of document.querySelectorAll('mjx-container[jax="CHTML"]:not([display="true"])')) {
      m.classList.remove("kx-wide");
      const line = m.parentElement ? m.parentElement.clientWidth : 0;
      if (line && m.getBoundingClientRect().width > line + 1) m.classList.add("kx-wide");
    }
    document.documentElement.dataset.kxFitted = "1";
  }
  function whenTypeset() {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      MathJax.startup.promise.then(mark);
    } else {
      mark();
    }
  }
  window.addEventListener("load", whenTypeset);
  let pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(mark, 50);
  });
})();
