"""Benchmarks of rental-fsm against baselines measured in the same run (issue 9).

``python -m benchmarks [--quick]`` (or ``make bench``) runs every scenario, writes
``benchmarks/results/<UTC date>.json`` and prints a table; ``python -m benchmarks.report``
turns the latest result into the RST of ``docs/performance.rst``. Nothing here is a timed
assertion: targets are reported as ratios against limits measured on the same machine.
"""
