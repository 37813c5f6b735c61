"""The parts only a running service needs: the store, the job runner, the worker, the client and the settings.

Library code (`nas.search`, `nas.export`, `nas.experiment`) never imports this package; a worker imports nothing of
the web app.
"""
