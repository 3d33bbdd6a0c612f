"""Shared foundations every method builds on: radiobiology (LQ/LQL, BED, EQD2, gEUD, SF2 ↔ α),
treatment protocols as data, the case-file schema and its validator."""
