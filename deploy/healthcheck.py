"""Container health check without curl: ``python -m deploy.healthcheck URL [URL ...]``.

Used by the compose health checks (the slim image has no curl or wget). Exits 0 when every
URL answers 2xx within the timeout, 1 otherwise, printing one line per failure.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

TIMEOUT_SECONDS = 3.0


def check(url: str, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """None when ``url`` answers 2xx, else the reason."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        return f"{url}: HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"{url}: {error}"
    return None if 200 <= status < 300 else f"{url}: HTTP {status}"


def main(argv: Sequence[str] | None = None) -> int:
    urls = list(sys.argv[1:] if argv is None else argv)
    if not urls:
        print("usage: python -m deploy.healthcheck URL [URL ...]", file=sys.stderr)
        return 2
    failures = [reason for url in urls if (reason := check(url)) is not None]
    for reason in failures:
        print(f"unhealthy: {reason}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
