"""Results are data: what a comparison leaves, and the numbers it is judged by.

:mod:`.records` (an engine run, its status and its worker's record), :mod:`.store` (the results folder:
results.csv, summary.json, checksums.csv, spec.toml; the one writer and reader), :mod:`.summary` (steady
state, throughput, the summary table, the formatters), :mod:`.parity` (how closely each engine follows
the reference variant that models it).
"""
