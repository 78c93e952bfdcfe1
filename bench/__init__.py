"""Benchmark harness: kcsync against rclone, the swift CLI and raw-client ceilings.

Run ``python3 -m bench.run --help``. Needs matplotlib for the chart (a ``bench`` extra).
"""
