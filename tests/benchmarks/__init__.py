"""Benchmarks: ``make bench`` (``python -m tests.benchmarks``); not part of ``make test``.

Every ``bench_*.py`` module exposes ``main()`` returning a dict of figures; the runner in
``__main__.py`` runs them, prints one table and writes ``bench-output/bench.json``.
"""
