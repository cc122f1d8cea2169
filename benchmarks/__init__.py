"""Benchmarks for the curation pipeline: `python -m benchmarks [--quick | --docs N]`.

Every number reported is a ratio of two measurements taken in the same run on the same machine
(throughput of one implementation against another, memory at one scale against another), never
an absolute target: the machines are shared and absolute timings move by 2x. See README.md.
"""
