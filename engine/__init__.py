"""artds engine: radiobiology, protocols, virtual trials, models, recommendations, reports.

Pure Python; never imports shiny.
"""

__version__ = "0.1.0"
