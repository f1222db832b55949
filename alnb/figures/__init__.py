"""Figure functions (each returns a matplotlib Figure) and the figure steps the loop writes."""
