"""The example's Robot Framework test in real headless Chromium (Debian's, through SeleniumLibrary and
chromedriver), the app in a process of its own exporting to a store file that `agentotel.robot` reads, beside a
test failing on purpose: its message names the session it caused, the first failing step and the replay command
with the store as `--source`, and the session's replay names the test."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from support import CHROMEDRIVER, CHROMIUM, EXAMPLE

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("robot") is None
    or importlib.util.find_spec("SeleniumLibrary") is None
    or not CHROMIUM.exists()
    or not CHROMEDRIVER.exists(),
    reason=f"needs robotframework, SeleniumLibrary, {CHROMIUM} and {CHROMEDRIVER} "
    "(pip install -e '.[dev]'; apt-get install chromium chromium-driver)",
)

FAILING = """
Charged Twice Without An Account
    [Documentation]    Fails on purpose: the seed guide's bug (the message names no account).
    Go To    ${URL}
    Input Text    id:message    I was charged twice for my subscription
    Click Button    Send
    Wait Until Page Contains    Sorry, something went wrong    timeout=5s
    Page Should Contain    I have refunded the second payment
"""


def test_the_robot_example_passes_and_a_failing_test_links_its_session(tmp_path: Path) -> None:
    for name in ("app.py", "chat.html", "SupportChat.py", "support_chat.robot"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    suite = tmp_path / "support_chat.robot"
    text = suite.read_text()
    suite.write_text(text.replace("\n\n*** Keywords ***", FAILING + "\n\n*** Keywords ***", 1))
    out = tmp_path / "results"
    env = {**os.environ, "AGENTOTEL_STORE": "off", "AGENTOTEL_CHROMIUM": str(CHROMIUM)}
    run = subprocess.run(
        [sys.executable, "-m", "robot", "--outputdir", str(out), "--log", "NONE", "--report", "NONE",
         "--variable", f"CHROMIUM:{CHROMIUM}", "--variable", f"CHROMEDRIVER:{CHROMEDRIVER}", str(suite)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    console = run.stdout + run.stderr
    assert run.returncode == 1, console  # one test failed
    assert re.search(r"Billing Question Is Answered\s+\| PASS \|", console), console
    assert "2 tests, 1 passed, 1 failed" in console

    tests = {t.get("name"): t for t in ElementTree.parse(out / "output.xml").iter("test")}
    failed = tests["Charged Twice Without An Account"].find("status")
    assert failed is not None and failed.get("status") == "FAIL"
    message = failed.text or ""
    lines = message.splitlines()
    assert lines[0] == "Page should have contained text 'I have refunded the second payment' but did not."
    assert lines[2].startswith("E2E test Support Chat.Charged Twice Without An Account failed: Page should have")
    screenshot = Path(lines[3].removeprefix("Screenshot: "))
    assert screenshot.stat().st_size > 1000
    assert re.fullmatch(r"Agent sessions this test caused \(trace [0-9a-f]{32}\): 1, 1 failed, failed first:", lines[4])
    assert re.fullmatch(r"1\. support_agent \(\S+\) ended Fail: customer_id cannot be None", lines[5])
    assert lines[6] == "   first failing step: fetch_customer_data: ValueError: customer_id cannot be None"
    store = out / "support-chat-sessions.db"
    assert re.fullmatch(rf"   replay: agentotel replay \S+ --source {re.escape(str(store))}", lines[7])
    # The first failed session's replay, read from the store the app wrote: its header names the test.
    assert "E2E test: Support Chat.Charged Twice Without An Account failed: Page should have" in message
    assert "fetch_customer_data   ← PROBLEM" in message

    # The replay command works as printed.
    session_id = lines[5].split("(", 1)[1].split(")", 1)[0]
    replay = subprocess.run(
        [str(Path(sys.executable).with_name("agentotel")), "replay", session_id, "--source", str(store)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    assert "fetch_customer_data" in replay.stdout and "customer_id cannot be None" in replay.stdout
