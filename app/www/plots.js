/* artds: Shiny output binding that draws plotly figures sent by app/plots.py (render_figure).
 * Plotly.react keeps the element, so zoom survives updates (layout.uirevision).
 *
 * The selected dose moves without a new figure: the server sends an "artds-selected-dose"
 * message {id, key, dose_gy, traces} with the traces that depend on it (each with its uid), and
 * they replace the drawn traces of the same uid. A message for a figure not drawn yet (its key
 * differs from the drawn figure's) is kept and applied once that figure is drawn. */
(function () {
  "use strict";

  function resizeVisible() {
    if (!window.Plotly) return;
    document.querySelectorAll(".artds-figure.js-plotly-plot").forEach(function (el) {
      if (el.offsetParent !== null) window.Plotly.Plots.resize(el);
    });
  }

  function applySelected(el, message) {
    var byUid = {};
    message.traces.forEach(function (trace) { byUid[trace.uid] = trace; });
    var moved = 0;
    var data = el.data.map(function (old) {
      var fresh = old.uid !== undefined ? byUid[old.uid] : undefined;
      if (fresh === undefined) return old;
      moved += 1;
      // A case hidden from the legend stays hidden.
      if (old.visible !== undefined && fresh.visible === undefined) fresh.visible = old.visible;
      return fresh;
    });
    el._artdsApplied = message;
    if (moved === 0) return;
    el.dataset.selectedDose = String(message.dose_gy);
    window.Plotly.react(el, data, el.layout, el._artdsConfig);
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
          el._artdsKey = undefined;
          el.classList.add("artds-figure-empty");
          return;
        }
        el.classList.remove("artds-figure-empty");
        el._artdsKey = value.key;
        el._artdsConfig = value.config;
        delete el.dataset.selectedDose;
        // A kept message applies to this figure only (one for another figure is stale now);
        // the same figure drawn again keeps the dose last moved to.
        var applied = el._artdsApplied;
        var pending = el._artdsPending || applied;
        el._artdsPending = undefined;
        var drawn = window.Plotly.react(el, value.data, value.layout, value.config);
        if (pending && value.key !== undefined && pending.key === value.key) {
          drawn.then(function () {
            // Unless a newer message was applied meanwhile.
            if (el._artdsKey === pending.key && el._artdsApplied === applied) {
              applySelected(el, pending);
            }
          });
        }
      },
    });
    window.Shiny.outputBindings.register(binding, "artds.figure");
    window.Shiny.addCustomMessageHandler("artds-selected-dose", function (message) {
      var el = document.getElementById(message.id);
      if (!el) return;
      if (el._artdsKey !== undefined && el._artdsKey === message.key && el.data) {
        applySelected(el, message);
      } else {
        el._artdsPending = message; // the newest wins; applied when its figure is drawn
      }
    });
  }

  if (window.Shiny && window.Shiny.OutputBinding) {
    register();
  } else {
    document.addEventListener("DOMContentLoaded", register);
  }
  document.addEventListener("shown.bs.tab", resizeVisible);
  window.addEventListener("artds:resize", resizeVisible);
})();
