"""Readers that turn a raw data set into :class:`pfvit.data.shards.ShardSpec` lists, one per split."""
