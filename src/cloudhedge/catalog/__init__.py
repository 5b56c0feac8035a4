"""Accelerators, providers, regions and prices: built-in data plus importers."""
