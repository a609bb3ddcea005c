"""A 10,000-event session opens and scrubs: the timeline stays a few hundred DOM nodes, keys and slider move
through it, and the page reports how long it took (printed, not asserted: this machine's timings vary)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from browser_support import FakeClock, llm_call

import agentotel
from agentotel.model import Session
from agentotel.replay.html import render_html
from agentotel.replay.text import format_cost, label
from agentotel.testing import capture

WORKERS = 3333  # an agent step, an LLM call and a tool call each, plus the failing action: 10,000 events

MEASURE_SCRUB = """(n) => {
  const api = window.agentotelReplay;
  const quantile = (values, q) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  };
  const summary = (values) => ({median: quantile(values, 0.5), p95: quantile(values, 0.95), max: Math.max(...values)});
  // Each step: the key event, then a forced style and layout pass (what the next frame would do).
  const keys = [];
  for (let k = 0; k < n; k++) {
    const t = performance.now();
    document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight', bubbles: true}));
    document.body.offsetHeight;
    keys.push(performance.now() - t);
  }
  const slider = document.getElementById('scrubber');
  const jumps = [];
  for (let k = 0; k < n; k++) {
    const t = performance.now();
    slider.value = String((k * 7919) % api.count);
    slider.dispatchEvent(new Event('input', {bubbles: true}));
    document.body.offsetHeight;
    jumps.push(performance.now() - t);
  }
  return {key: summary(keys), slider: summary(jumps), index: api.index};
}"""


@pytest.fixture
def big(fake_clock: FakeClock) -> Session:
    @agentotel.tool
    def search(query: str, page: int) -> dict[str, list[str]]:
        fake_clock.sleep(0.004)
        return {"hits": [f"doc-{page}-{i}" for i in range(3)]}

    @agentotel.agent("worker")
    def worker(i: int) -> dict[str, list[str]]:
        prompt = [{"role": "user", "content": f"Step {i}: what next?"}]
        llm_call(fake_clock, prompt, [{"role": "assistant", "content": f"Search page {i}."}], 300, 20, seconds=0.03)
        return search("refund policy", i)

    @agentotel.record_action("finish")
    def finish(pages: int) -> None:
        raise ValueError(f"gave up after {pages} pages")

    with capture(capture_content=True) as cap, pytest.raises(ValueError), agentotel.session("big-run", tags=["perf"]):
        for i in range(WORKERS):
            worker(i)
        finish(WORKERS)
    return cap.session("big-run")


def test_ten_thousand_events_open_and_scrub(big: Session, open_page: Any, tmp_path: Any) -> None:
    events = big.events
    assert len(events) == 3 * WORKERS + 1 == 10_000
    started = time.perf_counter()
    html = render_html(big)
    render_seconds = time.perf_counter() - started
    path = tmp_path / "big.html"
    path.write_text(html, encoding="utf-8")

    started = time.perf_counter()
    page = open_page(path.as_uri() + "#step=1")  # from the start (a failed session opens on its failure)
    page.wait_for_function("window.agentotelReplay.metrics.firstFrameAtMs !== null")
    open_seconds = time.perf_counter() - started
    metrics = page.evaluate("window.agentotelReplay.metrics")
    paint = page.evaluate("(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null")

    # Virtualised: a few hundred elements in all, not one per event.
    assert page.evaluate("document.getElementsByTagName('*').length") < 1_000
    assert page.inner_text("#ro-step") == "1 / 10000"

    scrub = page.evaluate(MEASURE_SCRUB, 300)
    index = scrub["index"]
    assert page.inner_text("#detail-title") == label(events[index])
    assert page.inner_text(".row.current .name") == label(events[index])
    assert page.inner_text("#ro-cost") == format_cost(sum(e.cost or 0.0 for e in events[: index + 1]))

    started = time.perf_counter()
    presses = 50
    for _ in range(presses):
        page.keyboard.press("ArrowRight")
    press_ms = (time.perf_counter() - started) * 1000 / presses
    assert page.evaluate("window.agentotelReplay.index") == min(index + presses, len(events) - 1)

    page.keyboard.press("End")
    assert page.inner_text(".row.current .name") == label(events[-1])
    page.keyboard.press("Home")
    assert page.inner_text(".row.current .name") == label(events[0])
    page.keyboard.press("e")
    assert page.inner_text("#detail-title") == "Action: finish"
    assert "gave up after 3333 pages" in page.inner_text("#detail-error")
    assert page.inner_text(".row.current .mark") == "← PROBLEM"

    print(
        f"\n10,000-event replay: page {len(html.encode()) / 1e6:.1f} MB, render_html {render_seconds * 1000:.0f} ms;"
        f"\n  open: script ready {metrics['readyAtMs']:.0f} ms after navigation"
        f" (JSON.parse {metrics['parseMs']:.0f} ms,"
        f" init {metrics['initMs']:.0f} ms), first frame {metrics['firstFrameAtMs']:.0f} ms, first paint {paint} ms,"
        f" Playwright goto-to-ready {open_seconds * 1000:.0f} ms"
        f"\n  per step (event + style + layout, 300 steps): key median {scrub['key']['median']:.1f} ms,"
        f" p95 {scrub['key']['p95']:.1f} ms, max {scrub['key']['max']:.1f} ms;"
        f" slider jump median {scrub['slider']['median']:.1f} ms, p95 {scrub['slider']['p95']:.1f} ms,"
        f" max {scrub['slider']['max']:.1f} ms"
        f"\n  Playwright key press round trip: {press_ms:.1f} ms"
    )
