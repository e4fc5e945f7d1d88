"""Call accounting: the call-event stream (stream.py, `app.calls`), the call
detail record (record.py), the crash-safe record log on flash (log.py), the
recorder that joins them (recorder.py), the console (commands.py) and the
syslog summaries.  docs/cdr.md is the reference for every consumer."""
