"""Analyses: plain functions from a model (and inputs) to DataFrames or small dataclasses."""
