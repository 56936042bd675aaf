"""Scheduled archive sweeps: recordings taken from folders and recorders on a schedule.

source.py    what a sweep asks of a source of recordings (`SweepSource`), and its types
settings.py  the `sweeps:` configuration, validated once
plan.py      a window cut into chunks (pure)
runner.py    one run of a sweep: list, record chunks, fetch, take in (take.py), the watermark
scheduler.py the cron schedules (APScheduler), catch-up at start, retry backoff
sources.py   a configured source made one of: folder_source.py, onvif_source.py,
             isapi_source.py, dahua_source.py (vendor_source.py: what the last two share)
local.py     `privmask sweep run` redacting in its own process when no daemon runs
"""
