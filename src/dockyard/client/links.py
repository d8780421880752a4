"""`Link` headers (RFC 8288) as registries use them to page tag and referrer lists."""

from __future__ import annotations

import re
from collections.abc import Iterable

from yarl import URL

_LINK = re.compile(r'\s*<([^>]*)>((?:\s*;\s*[^;,"]+(?:=\s*(?:"[^"]*"|[^;,]*))?)*)\s*(?:,|$)')
_REL = re.compile(r';\s*rel\s*=\s*(?:"([^"]*)"|([^;,\s]+))', re.IGNORECASE)


def next_link(values: Iterable[str], base: URL) -> URL | None:
    """The `rel="next"` target among `Link` header values, resolved against `base` (the URL
    of the request that got them); None on the last page."""
    for value in values:
        pos = 0
        while pos < len(value):
            match = _LINK.match(value, pos)
            if match is None or match.end() == pos:
                break
            pos = match.end()
            for rel in _REL.finditer(match.group(2)):
                relations = (rel.group(1) or rel.group(2) or "").lower().split()
                if "next" in relations:
                    return base.join(URL(match.group(1)))
    return None
