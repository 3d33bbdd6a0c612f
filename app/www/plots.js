/* artds: Shiny output binding that draws plotly figures sent by app/plots.py (render_figure).
 * Plotly.react keeps the element, so zoom survives updates (layout.uirevision). */
(function () {
  "use strict";

  function resizeVisible() {
    if (!window.Plotly) return;
    document.querySelectorAll(".artds-figure.js-plotly-plot").forEach(function (el) {
      if (el.offsetParent !== null) window.Plotly.Plots.resize(el);
    });
  }

  function register() {
    var binding = new window.Shiny.OutputBinding();
    window.jQuery.extend(binding, {
      find: function (scope) {
        return window.jQuery(scope).find(".artds-figure");
      },
      renderValue: function (el, value) {
        if (!value) {
          window.Plotly.purge(el);
          el.classList.add("artds-figure-empty");
          return;
        }
        el.classList.remove("artds-figure-empty");
        window.Plotly.react(el, value.data, value.layout, value.config);
      },
    });
    window.Shiny.outputBindings.register(binding, "artds.figure");
  }

  if (window.Shiny && window.Shiny.OutputBinding) {
    register();
  } else {
    document.addEventListener("DOMContentLoaded", register);
  }
  document.addEventListener("shown.bs.tab", resizeVisible);
  window.addEventListener("artds:resize", resizeVisible);
})();
