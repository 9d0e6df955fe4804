"""Generators of demo data (profile screens) that the tests and demos use; nothing is downloaded."""
