"""`netprobe report`: every analysis on a list of models, written as one self-contained report folder."""
