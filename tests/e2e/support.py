"""What the E2E tests share: the example app's folder, Debian's Chromium, and a JSON POST with headers."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "support_chat"
CHROMIUM = Path(os.environ.get("AGENTOTEL_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("AGENTOTEL_CHROMEDRIVER", "/usr/bin/chromedriver"))

if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))


def post_chat(url: str, message: str, headers: dict[str, str]) -> tuple[int, Any]:
    """POSTs `message` to the app's `/chat` with `headers`; (status, the JSON answer)."""
    request = urllib.request.Request(
        f"{url}/chat",
        data=json.dumps({"message": message}).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
