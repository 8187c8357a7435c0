"""The running worker: the Faust app's wiring, health, the web views and the dashboard."""
