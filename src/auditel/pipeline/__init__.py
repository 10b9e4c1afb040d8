"""The audit pipeline: the LogRecordProcessor that sanitises, redacts, chains and commits each record,
and the in-process sinks."""
