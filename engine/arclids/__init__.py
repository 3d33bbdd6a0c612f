"""ARCliDS (Niraula et al. 2022): virtual trials, feature graphs, the outcome estimators (RTOE:
Single-GNN, GLoGD-GNN, logistic baseline), the artificial RT environment (ARTE), the WGAN-GP
synthetic patients, the Double-DQN optimal decision maker (ODM), recommendations and Learning Mode.

Data flow of one recommendation: a validated case (:mod:`engine.core.schema`) → ARTE evaluates
the transition and the outcome ensemble for every candidate dose (:mod:`~engine.arclids.arte`) →
the ODM ensemble picks a dose (:mod:`~engine.arclids.odm`) → :func:`engine.arclids.recommend.
recommend` returns a :class:`~engine.arclids.recommend.Recommendation`."""
