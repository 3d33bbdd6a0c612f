"""artds Shiny app: one module per panel in ``app.panels``; all maths lives in ``engine``."""
