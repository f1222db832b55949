"""Dataset generators: the synthetic weld radiographs."""
