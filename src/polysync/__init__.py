"""Polysync for Azure Batch: run parameterised work from template Batch Jobs."""

__version__ = "0.1.0"
