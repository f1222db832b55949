"""Workspace, data reading and validation, the workspace lock, CPU threads, logs, offline mode, typed options and
results (:mod:`alnb.core.records`)."""
