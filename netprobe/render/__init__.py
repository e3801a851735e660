"""Rendering: tables, CSV/JSON/markdown and plots are made from analysis results here, in one place."""
