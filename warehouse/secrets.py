"""Credentials out of everything that is persisted (warehouse rows, summaries, records).

A URL can carry credentials in two places: its userinfo (`user:password@host`) and its query
(`?token=...`, `?api_key=...`, a signed URL's `sig=...`). Userinfo is removed. The whole query (and
the fragment) is removed too, not only values under names that look secret: a credential can sit
under any name, so no query is known to be safe to keep. Scheme, host, port and path stay, which is
what identifies the server.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# a scheme, "://", then everything up to whitespace, a quote or an angle bracket: URLs as written in
# config values and inside error messages
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def _public_url(match: re.Match) -> str:
    parts = urlsplit(match.group(0))
    host = parts.netloc.rpartition("@")[2]  # the last "@" ends the userinfo, even an unescaped one
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def without_secrets(value: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, tuples, strings, scalars) in which every URL, whole
    string or inside a longer text, has lost its userinfo, query and fragment."""
    if isinstance(value, str):
        return _URL.sub(_public_url, value)
    if isinstance(value, dict):
        return {without_secrets(k): without_secrets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_secrets(v) for v in value]
    return value
