"""What every method runs on: the database (:mod:`~engine.platform.store`), accounts and sessions
(:mod:`~engine.platform.accounts`), the model registry (:mod:`~engine.platform.registry`), parallel
work (:mod:`~engine.platform.executor`), progress and cancel of long runs
(:mod:`~engine.platform.jobs`) and the HTML report (:mod:`~engine.platform.report`)."""
