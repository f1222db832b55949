"""Entry points: the alnb command line, the headless run, the Label Studio ML backend (alnb serve)."""
