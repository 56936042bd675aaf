"""The review page: reviewers log in and decide which subjects of a waiting clip stay visible.

users.py     the reviewers' file: scrypt password hashes, written atomically, mode 600
sessions.py  server-side sessions (idle and absolute expiry) and login rate limiting
guard.py     what every request passes: host, cross-site and CSRF checks, security headers
queue.py     the extension point the daemon's review queue plugs into (`ReviewQueue`)
web.py       the Starlette app: login, logout, the queue page
server.py    serving the app with uvicorn on a socket bound first (clear errors)
settings.py  the `review` key of the daemon's configuration
"""
