"""Readouts over stored results: dose-response fits, hit statistics with FDR, plate QC."""
