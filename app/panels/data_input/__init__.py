"""Data input panel: example patients, CSV upload, a manual form, the case list and notes.

Cases are validated by :mod:`engine.core.schema` (``read_cases`` for files,
``validate_dataframe`` for the form). A refused file or form shows every problem (row, column,
value, message) and leaves the current cases untouched. The session's working set of cases is per
session and per protocol; everything added is also saved in the database
(:mod:`engine.platform.store`, records built by :mod:`engine.platform.inputs`) as a new input
version when it changed, physician notes are saved per patient with "Save notes" (versioned),
follow-ups (the adaptive dose given and the outcomes), the physician's proposed dose and an
imported plan's dosimetric features add a version, and stored patients can be loaded again in
any later session. The inputs download as CSV (which uploads again unchanged) or as a printable
page.

One module per part, each with its card and a server function taking the shared
:class:`~app.panels.data_input.state.DataInputState`: ``examples``, ``upload``, ``form``,
``cases`` (the case list and the sidebar chooser), ``saved`` (saved patients and follow-up),
``proposal`` (the physician's proposed dose), ``plan`` (a plan imported from DICOM-RT or a DVH
table, whose dosimetric features fill the form or a case), ``notes``; ``messages`` holds their
success lines and refusals, ``panel`` puts them together.
"""

from app.panels.data_input.panel import data_input_server, data_input_sidebar_ui, data_input_ui
from app.panels.data_input.state import CaseSelection

__all__ = ["CaseSelection", "data_input_server", "data_input_sidebar_ui", "data_input_ui"]
