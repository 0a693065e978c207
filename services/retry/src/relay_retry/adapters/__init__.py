"""I/O of the retry service: the SQL schedule."""
