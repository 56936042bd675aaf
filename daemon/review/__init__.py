"""The review page: reviewers log in and decide which subjects of a waiting clip stay visible.

users.py     the reviewers' file: scrypt password hashes, written atomically, mode 600
sessions.py  server-side sessions (idle and absolute expiry) and login rate limiting
guard.py     what every request passes: host, cross-site and CSRF checks, security headers
queue.py     what the page asks of the daemon's review queue (`ReviewQueue`)
journal_queue.py  the daemon's review queue on the journal
web.py       the Starlette app: login, logout, the queue page
clip_pages.py  a clip's page: contact sheet, timelines, preview, areas, the decision
preview.py   a frame masked as the package will be with the reviewer's choice
frames.py    frame N of a clip reached by seeking to its keyframe, as the pipeline numbers it
serving.py   the page as `privmask run` and `privmask review serve` set it up
server.py    serving the app with uvicorn on a socket bound first (clear errors)
settings.py  the `review` key of the daemon's configuration
"""
