/* artds: when the server says the login ended (expired, logged out elsewhere), go to the login
 * page instead of leaving a greyed-out app. */
(function () {
  "use strict";
  function register() {
    window.Shiny.addCustomMessageHandler("artds-session-ended", function (_message) {
      window.location.assign("login");
    });
  }
  if (window.Shiny && window.Shiny.addCustomMessageHandler) {
    register();
  } else {
    document.addEventListener("DOMContentLoaded", register);
  }
})();
