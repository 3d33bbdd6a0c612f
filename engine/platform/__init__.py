"""What every method runs on: the database (:mod:`~engine.platform.store`), accounts and sessions
(:mod:`~engine.platform.accounts`), the model registry (:mod:`~engine.platform.registry`), parallel
work (:mod:`~engine.platform.executor`) and the HTML report (:mod:`~engine.platform.report`)."""
