"""One router per resource: health, spaces, devices, runs, predict, experiments, exports."""
