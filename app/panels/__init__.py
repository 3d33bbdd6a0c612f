"""One Shiny module per panel: ``<panel>_ui(id)`` and ``<panel>_server(id, *, ...)``."""
