"""Monitoring: never miss a file before it expires.

Pure parts (no I/O; ``now`` and the manifest's records are arguments):

    settings   [notify] and durations ("48h", "26h", "6h")
    atrisk     files not fetched yet, with the time left before they expire
    verdict    the problems a human must hear about, one line each
    alert      one grouped message per run (Slack-compatible and generic JSON) and the
               rate limit that keeps the same alert from repeating
    metrics    the Prometheus text format (written by hand: a dozen gauges, no
               ``_created`` series, no registry to reset between runs)
    runs       the run record: when each workspace last finished a run
    capacity   ``plan``'s warning when a plan cannot finish before files expire

    digest     one pass over the manifest's records, for all of the above

I/O parts: ``files`` (small JSON state beside the manifest, metrics file; atomic, no
symlink followed), ``webhook`` (aiohttp poster) and ``hooks`` (what ``run`` and
``status --check`` call). The flags and what they print are in ``cli/monitor.py``.

Two small files live beside the manifest ``M``: ``M.runs.json`` (the run record, written by
``run`` at its end) and ``M.alerts.json`` (when each alert was last sent).
"""
