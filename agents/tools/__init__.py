"""The command-line tools apart from the worker: simulator, demo, broker launcher, replay,
backfill."""
