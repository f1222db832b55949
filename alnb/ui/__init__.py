"""What people read: the report, notebook widgets and tables, the notebooks' narrative, the notebook runner."""
