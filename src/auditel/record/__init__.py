"""The audit record: attribute names and kinds, ids, safe values, canonical JSON and keyed digests."""
