// kexue-notes: mark every inline formula wider than its line with the class kx-wide, so that
// kexue.css lets it scroll in its own box (MathJax 3 cannot break inline formulas). Runs when
// MathJax has typeset the page and again whenever the window is resized.
// A formula that scrolls (an inline one marked kx-wide, or a display one wider than its column)
// becomes a named, focusable region so that the keyboard can scroll it; MathJax itself keeps
// formulas out of the Tab order (menuOptions inTabOrder: false in _config.yml).
(function () {
  function scrollable(m, wide) {
    if (wide) {
      m.setAttribute("tabindex", "0");
      m.setAttribute("role", "region");
      m.setAttribute("aria-label", "formula, scrolls sideways");
    } else if (m.getAttribute("role") === "region") {
      m.removeAttribute("tabindex");
      m.removeAttribute("role");
      m.removeAttribute("aria-label");
    }
  }
  function mark() {
    for (const m of document.querySelectorAll('mjx-container[jax="CHTML"]:not([display="true"])')) {
      m.classList.remove("kx-wide");
      const line = m.parentElement ? m.parentElement.clientWidth : 0;
      const wide = Boolean(line && m.getBoundingClientRect().width > line + 1);
      if (wide) m.classList.add("kx-wide");
      scrollable(m, wide);
    }
    for (const m of document.querySelectorAll('mjx-container[jax="CHTML"][display="true"]')) {
      scrollable(m, m.scrollWidth > m.clientWidth + 1);
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
