"""The detector: training profiles and runs, the dropout head, MC-dropout sampling, the shipped checkpoint."""
