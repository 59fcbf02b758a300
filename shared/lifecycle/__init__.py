"""Token lifecycle: the timer that finds connections due for a refresh through the due index,
the queue messages it fans out, and the worker that refreshes each connection.

See docs/operations.md for what a run does, its settings and its audit events.
"""
