"""Shards: one backfill split by workspace across processes, machines or cluster tasks.

    assign.py    Shard (I of N), --shard parsing, the stable workspace → shard hash (pure)
    naming.py    shard manifest names beside the main manifest (pure)
    merge.py     the merge rule for records of several manifests, conflicts (pure)
    view.py      the merged view of a main manifest and its shard manifests; merge files
    dask.py      run every shard as one task on a Dask cluster (the ``dask`` extra)
    network.py   the submitting command's CA bundle and proxies, carried to the workers
    remote.py    ``manifest merge`` with manifests in an object store

Importing this package loads only the pure parts.
"""

from __future__ import annotations

from .assign import Shard, ShardError, parse_shard, shard_of
from .merge import Conflict, Merged, merge, wins
from .naming import is_shard_manifest, shard_manifest

__all__ = [
    "Conflict", "Merged", "Shard", "ShardError", "is_shard_manifest", "merge",
    "parse_shard", "shard_manifest", "shard_of", "wins",
]
