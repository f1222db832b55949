"""The active-learning loop's steps: rounds, selection commits, the review plan, the strategy study."""
