// MathJax 3 for the site: \( \) and \[ \] from arithmatex on the Markdown pages, $ $ and
// $$ $$ in the executed notebooks (whose Markdown cells MathJax must search, so the page
// is searched as a whole; code and pre blocks are skipped by default).
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true
  },
  options: {
    ignoreHtmlClass: "md-header|md-nav|md-footer|md-search|md-sidebar"
  }
};

document$.subscribe(() => {
  MathJax.startup.output.clearCache()
  MathJax.typesetClear()
  MathJax.texReset()
  MathJax.typesetPromise()
})
