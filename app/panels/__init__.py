"""One Shiny module per panel: ``<panel>_ui(id)`` and ``<panel>_server(id, *, ...)`` (the Data
input panel is a package, one module per part); ``help`` holds every help box and the user guide,
``widgets`` the small UI pieces several panels build alike, ``profile_source`` the SF2 and
Systemic therapy panels' sample source (a training cell line or an uploaded profile CSV)."""
