"""Robot Framework keywords that start and stop the support chat app in a process of its own.

The app exports its sessions to a store file (`AGENTOTEL_STORE`), batched every 100 ms; the test process reads
them from there (`Library    agentotel.robot    source=...`), as a test of an app deployed elsewhere would.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

APP = Path(__file__).with_name("app.py")
START_TIMEOUT = 60.0


class SupportChat:
    ROBOT_LIBRARY_SCOPE = "SUITE"

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None

    def start_support_chat(self, store: str) -> str:
        """Starts the app (and its scripted model) on a free loopback port, exporting to `store`; returns its URL
        once it serves."""
        env = {
            **os.environ,
            "AGENTOTEL_STORE": store,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "SUPPORT_CHAT_UNTIL_STDIN_CLOSES": "1",
        }
        self._process = subprocess.Popen(
            [sys.executable, str(APP)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self._process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                if selector.select(timeout=deadline - time.monotonic()):
                    line = self._process.stdout.readline().strip()
                    if line.startswith("http://"):
                        return line
                    if not line and self._process.poll() is not None:
                        break
        self.stop_support_chat()
        raise RuntimeError(f"the support chat app did not start within {START_TIMEOUT:.0f}s")

    def stop_support_chat(self) -> None:
        """Stops the app: closing its stdin makes it flush its spans and leave; killed if it has not in 15 s."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
