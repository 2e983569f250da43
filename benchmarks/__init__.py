"""Client-side cost of dynaorm and its peers against an infinitely fast DynamoDB.

Run by hand: `python -m benchmarks` (full) or `python -m benchmarks --quick` (a smoke
test for CI, no thresholds). See docs/performance.md.
"""
