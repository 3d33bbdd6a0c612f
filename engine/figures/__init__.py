"""Plotly figures of the ARCliDS pipeline, one module per audience; import from the submodule.

For clinicians (the app's recommendation panels and the HTML report):

- :mod:`engine.figures.outcome_space`: the outcome space (TCP against NTCP over the reward
  landscape, goal regions, interval ellipses of an ensemble).
- :mod:`engine.figures.dose_response`: TCP, NTCP and reward against the adaptive dose.
- :mod:`engine.figures.wording`: the recommendation's numbers as text (also for the CLI).
- :mod:`engine.figures.population`: where the cases sit in the virtual-trial population.

For physicists (the review panels and the model cards):

- :mod:`engine.figures.model_review`: the outcome estimators: cross-validated ROC curves, the
  learning curve, the dose response per architecture.
- :mod:`engine.figures.odm_review`: the synthetic patients (WGAN-GP) and the Double-DQN decision
  makers against the clinical decisions.

Shared by all of them, and by :mod:`engine.planner.figures` and :mod:`engine.sf2.figures`:

- :mod:`engine.figures.style`: colours, fonts, the plotly config, the base layout and the
  escaping of user text.

Each figure is a plain function of engine data returning a ``plotly.graph_objects.Figure``.
"""
