"""Shared foundations every method builds on: radiobiology (LQ/LQL, BED, EQD2, gEUD, LQ survival,
SF2 ↔ α), treatment protocols as data, reading uploaded CSV files (tabular) and the case-file
schema and its validator, the Double-DQN pieces both agents share (rl) and the config field
checks (config)."""
