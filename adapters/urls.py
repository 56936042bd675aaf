"""The one place that takes credentials out of URLs, and puts them in.

Camera, recorder and mirror URLs often carry a password (`rtsp://admin:secret@cam/`) or a
token in the query (`?password=...`, `?token=...`). Every URL that is printed, logged,
stored or put in an error message goes through `redact`; `scrub` cleans text (an FFmpeg
or urllib message) that may quote a URL; only `with_credentials` puts them back, for the
connection itself.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

# query parameters that hold credentials (compared case-insensitively)
SECRET_QUERY_KEYS = frozenset(
    {"user", "username", "password", "pass", "passwd", "pwd", "token", "access_token", "auth",
     "key", "sig", "signature"}  # fmt: skip
)
UNPARSEABLE = "<unparseable url>"


def redact(url: str) -> str:
    """The URL without `user:password@` and without credential query parameters."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        query = parts.query
        if query:
            kept = [
                (k, v)
                for k, v in parse_qsl(query, keep_blank_values=True)
                if k.lower() not in SECRET_QUERY_KEYS
            ]
            query = urlencode(kept, safe="/:")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return UNPARSEABLE


def scrub(text: str, url: str) -> str:
    """`text` with `url` shown redacted, and its password and secret values blanked wherever
    else they appear, as the URL spells them or decoded (FFmpeg and urllib quote parts of
    the URL in their messages)."""
    text = text.replace(url, redact(url))
    try:
        parts = urlsplit(url)
        secrets = [parts.password or "", (parts.username or "") if parts.password else ""]
        secrets += [
            v for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if k.lower() in SECRET_QUERY_KEYS
        ]  # fmt: skip
    except ValueError:
        return text
    spellings = {form for secret in secrets for form in (secret, unquote(secret))}
    for secret in sorted(filter(None, spellings), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def with_credentials(url: str, username: str, password: str) -> str:
    """The URL with credentials, for connecting only (never logged or stored)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def host_keys(url: str) -> tuple[str, ...]:
    """How a credentials file may name the device at `url`: the URL, `host:port`, `host`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    host_port = parts.netloc.rpartition("@")[2]
    return tuple(dict.fromkeys(k for k in (redact(url), host_port, parts.hostname or "") if k))
