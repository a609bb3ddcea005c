"""Turns worker results into the benchmark's figures, its targets (met or missed) and the Markdown tables that
`run.py` prints and writes into `benchmarks/README.md`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _harness import median

KINDS = ("plain", "stream")
README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"
FRAMEWORKS_START = "<!-- frameworks:start -->"
FRAMEWORKS_END = "<!-- frameworks:end -->"
FRAMEWORK_ORDER = {
    framework: i for i, framework in enumerate(("langchain", "openai-agents", "pydantic-ai", "crewai", "google-adk"))
}
PEER_ORDER = {
    peer: i
    for i, peer in enumerate(
        ("agentotel", "otel-openai-v2", "otel-genai-openai", "traceloop", "openinference", "openlit", "agentops")
    )
}
STEP_FLOOR = {"agentotel+content": "floor+content"}
"""The floor each step case is compared with (the bare span, unless named here)."""


def _median_or_none(values: Sequence[float]) -> float | None:
    return round(median(values), 1) if values else None


def _failure(results: Sequence[dict[str, Any]]) -> str | None:
    for found in results:
        if found.get("status") != "ok":
            return str(found.get("reason") or found.get("status"))
    return None


def _ratios_to_fastest_peer(rows: list[dict[str, Any]], added: str) -> None:
    """Sets `{kind}_ratio_to_fastest_peer` on every measured row: its `{kind}_{added}` divided by the smallest one
    among the other peers' rows of the same content mode (agentotel's in-session row is no peer)."""
    for mode in ("off", "on"):
        for kind in KINDS:
            others = [
                r[f"{kind}_{added}"]
                for r in rows
                if r["status"] == "ok"
                and r["content"] == mode
                and r["peer"] != "agentotel"
                and not r.get("session")
                and r[f"{kind}_{added}"] is not None
            ]
            fastest = min(others) if others else None
            for r in rows:
                if r["content"] != mode or r["status"] != "ok":
                    continue
                value = r[f"{kind}_{added}"]
                ratio = round(value / fastest, 2) if fastest is not None and fastest > 0 and value is not None else None
                r[f"{kind}_ratio_to_fastest_peer"] = ratio


def llm_rows(
    jobs: Sequence[Any], results: Sequence[Sequence[dict[str, Any]]], missing: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """LLM-call rows: for each peer and content mode, the CPU µs per call with no tracing and the µs the peer
    adds (both measured in the same process; median over rounds), plain and streamed, and the ratio of that to the
    fastest other peer's."""
    rows: list[dict[str, Any]] = []
    for job, found in zip(jobs, results, strict=True):
        row: dict[str, Any] = {"peer": job.label["peer"], "content": job.label["mode"], "session": job.label["session"]}
        ok = [r for r in found if r.get("status") == "ok"]
        if not ok:
            rows.append({**row, "status": "not-run", "reason": _failure(found)})
            continue
        first = ok[0]
        row.update(
            status="ok",
            versions=first.get("versions"),
            note=first.get("note"),
            spans_per_call=first.get("spans_per_call"),
            prompt_recorded=first.get("prompt_recorded"),
            span_names=first.get("span_names"),
            rounds=len(ok),
        )
        for kind in KINDS:
            bases = [r["baseline"][kind]["cpu_us_min"] for r in ok]
            added = [r["traced"][kind]["cpu_us_min"] - r["baseline"][kind]["cpu_us_min"] for r in ok]
            row[f"{kind}_base_us"] = _median_or_none(bases)
            row[f"{kind}_added_us"] = _median_or_none(added)
            row[f"{kind}_added_per_round_us"] = [round(a, 1) for a in added]
        rows.append(row)
    _ratios_to_fastest_peer(rows, "added_us")
    for entry in missing:
        for mode in ("off", "on"):
            rows.append({"peer": entry["peer"], "content": mode, "session": False, **entry})
    rows.sort(key=lambda r: (r["content"], r["session"], PEER_ORDER.get(r["peer"], 99)))
    return {"rows": rows}


def instruction_rows(results: Sequence[dict[str, Any]], missing: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Instruction rows: for each peer and content mode, the instructions one call executes with no tracing and
    those the peer adds (callgrind; the calling thread), plain and streamed, and the ratio of the added count to
    the fastest other peer's."""
    rows: list[dict[str, Any]] = []
    for found in results:
        row: dict[str, Any] = {"peer": found.get("peer"), "content": found.get("mode")}
        if found.get("status") != "ok":
            rows.append({**row, "status": "not-run", "reason": found.get("reason") or found.get("status")})
            continue
        row.update(
            status="ok",
            versions=found.get("versions"),
            spans_per_call=found.get("spans_per_call"),
            prompt_recorded=found.get("prompt_recorded"),
        )
        for kind in KINDS:
            row[f"{kind}_base"] = found[kind]["baseline_instructions"]
            row[f"{kind}_added"] = found[kind]["added_instructions"]
        rows.append(row)
    _ratios_to_fastest_peer(rows, "added")
    for entry in missing:
        for mode in ("off", "on"):
            rows.append({"peer": entry["peer"], "content": mode, **entry})
    rows.sort(key=lambda r: (r["content"], PEER_ORDER.get(r["peer"], 99)))
    return {"rows": rows}


def step_rows(results: Sequence[Sequence[dict[str, Any]]], missing: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Step rows: each case's CPU µs per call and its ratio to the floor measured in the same process."""
    rows: list[dict[str, Any]] = []
    for found in results:
        ok = [r for r in found if r.get("status") == "ok"]
        if not ok:
            first = found[0] if found else {}
            rows.append(
                {"peer": first.get("peer"), "case": first.get("peer"), "status": "not-run", "reason": _failure(found)}
            )
            continue
        peer = ok[0]["peer"]
        for case in ok[0]["cases"]:
            if case.startswith("floor") and peer != "agentotel" and case != "floor":
                continue
            floor = STEP_FLOOR.get(case, "floor")
            values = [r["cases"][case]["cpu_us_min"] for r in ok]
            floors = [r["cases"][floor]["cpu_us_min"] for r in ok]
            ratios = [v / f for v, f in zip(values, floors, strict=True) if f]
            rows.append(
                {
                    "peer": peer,
                    "case": case,
                    "status": "ok",
                    "us": _median_or_none(values),
                    "floor": floor,
                    "floor_us": _median_or_none(floors),
                    "ratio_to_floor": round(median(ratios), 2) if ratios else None,
                    "added_us": round(median([v - f for v, f in zip(values, floors, strict=True)]), 1),
                    "rounds": len(ok),
                    "versions": ok[0].get("versions"),
                }
            )
    for entry in missing:
        rows.append({"peer": entry["peer"], "case": entry["peer"], **entry})
    return {"rows": rows}


def _ratios_to_openinference(rows: list[dict[str, Any]], added: str) -> None:
    """Sets `ratio_to_openinference` on every measured row: its `added` divided by the OpenInference row's of the
    same framework and content mode (None when that one is missing or added nothing)."""
    theirs = {
        (r["framework"], r["content"]): r.get(added)
        for r in rows
        if r["peer"] == "openinference" and r["status"] == "ok"
    }
    for r in rows:
        if r["status"] != "ok":
            continue
        other = theirs.get((r["framework"], r["content"]))
        value = r.get(added)
        r["ratio_to_openinference"] = (
            round(value / other, 2) if value is not None and other is not None and other > 0 else None
        )


def _framework_missing_rows(missing: Sequence[dict[str, Any]], modes: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {"framework": entry["framework"], "peer": peer, "content": mode, **entry}
        for entry in missing
        for peer in ("agentotel", "openinference")
        for mode in modes
    ]


def _framework_order(row: dict[str, Any]) -> tuple[int, str, int]:
    return (FRAMEWORK_ORDER.get(row["framework"], 99), row["content"], 0 if row["peer"] == "agentotel" else 1)


def framework_rows(
    jobs: Sequence[Any], results: Sequence[Sequence[dict[str, Any]]], missing: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Framework rows: for each framework, peer and content mode, the CPU µs one tool call costs untraced and the
    µs the peer adds to it (both measured in the same process; median over rounds), and agentotel's added µs over
    OpenInference's. Pydantic AI's rows also give a whole agent run's (its model steps included)."""
    rows: list[dict[str, Any]] = []
    for job, found in zip(jobs, results, strict=True):
        label = job.label
        row: dict[str, Any] = {"framework": label["framework"], "peer": label["peer"], "content": label["mode"]}
        ok = [r for r in found if r.get("status") == "ok"]
        if not ok:
            rows.append({**row, "status": "not-run", "reason": _failure(found)})
            continue
        first = ok[0]
        added = [r["added_us"] for r in ok]
        row.update(
            status="ok",
            versions=first.get("versions"),
            note=first.get("note"),
            spans_per_tool_call=first.get("spans_per_tool_call"),
            content_recorded=first.get("content_recorded"),
            span_names=first.get("span_names"),
            rounds=len(ok),
            base_us=_median_or_none([r["base_us"] for r in ok]),
            added_us=_median_or_none(added),
            added_per_round_us=[round(a, 1) for a in added],
        )
        if len(first.get("tool_calls") or {}) > 1:  # a case that runs more than the tool call: report it too
            row.update(
                call_case=first.get("call_case"),
                call_base_us=_median_or_none([r["call_base_us"] for r in ok]),
                call_added_us=_median_or_none([r["call_added_us"] for r in ok]),
            )
        rows.append(row)
    _ratios_to_openinference(rows, "added_us")
    rows += _framework_missing_rows(missing, ("off", "on"))
    rows.sort(key=_framework_order)
    return {"rows": rows}


def framework_instruction_rows(
    jobs: Sequence[Any], results: Sequence[dict[str, Any]], missing: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Framework rows in instructions (callgrind, the calling thread): per tool call untraced and added by the peer,
    and agentotel's added count over OpenInference's."""
    rows: list[dict[str, Any]] = []
    for job, found in zip(jobs, results, strict=True):
        label = job.label
        row: dict[str, Any] = {"framework": label["framework"], "peer": label["peer"], "content": label["mode"]}
        if found.get("status") != "ok":
            rows.append({**row, "status": "not-run", "reason": found.get("reason") or found.get("status")})
            continue
        row.update(
            status="ok",
            versions=found.get("versions"),
            spans_per_tool_call=found.get("spans_per_tool_call"),
            content_recorded=found.get("content_recorded"),
            base=found["baseline_instructions"],
            added=found["added_instructions"],
            wall_s=found.get("wall_s"),
        )
        if len(found.get("tool_calls") or {}) > 1:
            row.update(
                call_case=found.get("call_case"),
                call_base=found.get("call_base_instructions"),
                call_added=found.get("call_added_instructions"),
            )
        rows.append(row)
    _ratios_to_openinference(rows, "added")
    rows += _framework_missing_rows(missing, ("off",))
    rows.sort(key=_framework_order)
    return {"rows": rows}


def _framework_targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """agentotel adds less to a framework's tool call than the framework's OpenInference instrumentor."""
    found: list[dict[str, Any]] = []
    for key, unit, what in (("frameworks", "us", "added us"), ("framework_instructions", "", "added instructions")):
        for row in data.get(key, {}).get("rows", []):
            if row.get("peer") != "agentotel":
                continue
            name = f"tool call ({row['framework']}), content {row['content']}: {what} / OpenInference's"
            ratio = row.get("ratio_to_openinference")
            if row.get("status") != "ok":
                found.append(_target(name, None, "< 1x", None, str(row.get("reason"))))
                continue
            value = row.get("added_us" if key == "frameworks" else "added")
            note = f"+{_fmt(value)}{' ' + unit if unit else ' instructions'}"
            found.append(_target(name, ratio, "< 1x", None if ratio is None else ratio < 1, note))
    return found


def _target(name: str, value: Any, limit: str, met: bool | None, note: str = "") -> dict[str, Any]:
    return {"target": name, "value": value, "limit": limit, "met": met, "note": note}


def targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 7, with the measured value and whether it is met (`None`: not measured)."""
    found: list[dict[str, Any]] = []
    for row in data.get("steps", {}).get("rows", []):
        if row.get("peer") == "agentotel" and row.get("case") in ("agentotel", "agentotel+content"):
            ratio = row.get("ratio_to_floor")
            found.append(
                _target(
                    f"step overhead, {row['case']} vs {row['floor']}",
                    ratio,
                    "<= 1.2x",
                    None if ratio is None else ratio <= 1.2,
                )
            )
    for row in data.get("llm", {}).get("rows", []):
        if row.get("peer") != "agentotel" or row.get("session"):
            continue
        for kind in KINDS:
            if row.get("status") != "ok":
                found.append(
                    _target(
                        f"LLM call ({kind}), content {row['content']}",
                        None,
                        "< 1x fastest peer",
                        None,
                        str(row.get("reason")),
                    )
                )
                continue
            ratio = row.get(f"{kind}_ratio_to_fastest_peer")
            found.append(
                _target(
                    f"LLM call ({kind}), content {row['content']}: added us / fastest peer's",
                    ratio,
                    "< 1x",
                    None if ratio is None else ratio < 1,
                    f"+{row.get(f'{kind}_added_us')} us",
                )
            )
    counted = data.get("instruction_steps", {})
    for case, floor in (("agentotel", "floor"), ("agentotel+content", "floor+content")):
        if counted:
            ratio = (counted.get("ratio_to_floor") or {}).get(case)
            note = (
                str(counted.get("reason", ""))
                if ratio is None
                else f"{counted['cases'][case]:,} vs {counted['cases'][floor]:,} instructions"
            )
            found.append(
                _target(
                    f"step overhead in instructions, {case} vs {floor}",
                    ratio,
                    "<= 1.2x",
                    None if ratio is None else ratio <= 1.2,
                    note,
                )
            )
    for row in data.get("instructions", {}).get("rows", []):
        if row.get("peer") != "agentotel":
            continue
        for kind in KINDS:
            name = f"LLM call ({kind}), content {row['content']}: added instructions / fastest peer's"
            if row.get("status") != "ok":
                found.append(_target(name, None, "< 1x", None, str(row.get("reason"))))
                continue
            ratio = row.get(f"{kind}_ratio_to_fastest_peer")
            note = f"+{row[f'{kind}_added']:,} instructions"
            found.append(_target(name, ratio, "< 1x", None if ratio is None else ratio < 1, note))
    recon = data.get("reconstruction", {})
    for key, label in (
        ("otlp_json", "100,000-span session from OTLP JSON"),
        ("store", "100,000-span session from the store"),
    ):
        part = recon.get(key, {})
        value = part.get("total_s")
        note = (
            f"read {part.get('read_s')} s + build {part.get('build_s')} s"
            if value is not None
            else str(part.get("reason", ""))
        )
        if key == "otlp_json" and part.get("reader"):
            note += f" ({part['reader']})"
        found.append(_target(label, value, "<= 1 s", None if value is None else value <= 1.0, note))
        if key == "otlp_json" and part.get("stdlib_read_s") is not None:
            plain = round(part["stdlib_read_s"] + (part.get("build_s") or 0), 3)
            found.append(
                _target(
                    f"{label}, without the fast extra",
                    plain,
                    "<= 1 s",
                    plain <= 1.0,
                    f"read {part['stdlib_read_s']} s (standard library json) + build {part.get('build_s')} s",
                )
            )
    listing = recon.get("sessions_list", {})
    for key, label in (
        ("sessions_s", "`agentotel sessions` over 100,000 stored sessions (in process)"),
        ("command_s", "`agentotel sessions` over 100,000 stored sessions (the command)"),
    ):
        value = listing.get(key)
        found.append(_target(label, value, "<= 0.5 s", None if value is None else value <= 0.5))
    memory = data.get("memory", {})
    if memory:
        found.append(
            _target(
                "memory plateau over 1,000,000 spans",
                memory.get("second_half_growth_mib"),
                "second-half growth <= max(16 MiB, 5% of peak)",
                memory.get("plateau"),
                f"peak {memory.get('peak_rss_mib')} MiB",
            )
        )
    found += _framework_targets(data)
    return found


# --- rendering ----------------------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _spread(values: Sequence[float]) -> str:
    """The per-round values of a figure, lowest to highest: how far one run's noise moves it."""
    return "…".join(f"{v:.0f}" for v in (min(values), max(values))) if values else "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _llm_table(data: dict[str, Any]) -> str:
    rows = []
    for r in data["llm"]["rows"]:
        peer = r["peer"] + (" (in a session)" if r.get("session") else "")
        if r.get("status") != "ok":
            rows.append([peer, r["content"], *["-"] * 11, f"not run: {r.get('reason')}"])
            continue
        versions = r.get("versions") or {}
        rows.append(
            [
                peer,
                r["content"],
                versions.get("openai"),
                r["plain_base_us"],
                r["plain_added_us"],
                _spread(r["plain_added_per_round_us"]),
                r.get("plain_ratio_to_fastest_peer"),
                r["stream_base_us"],
                r["stream_added_us"],
                _spread(r["stream_added_per_round_us"]),
                r.get("stream_ratio_to_fastest_peer"),
                r.get("spans_per_call"),
                r.get("prompt_recorded"),
                ", ".join(r.get("span_names") or []),
            ]
        )
    header = [
        "peer",
        "content",
        "openai",
        "plain: base µs",
        "plain: +µs",
        "rounds",
        "x fastest peer",
        "stream: base µs",
        "stream: +µs",
        "rounds",
        "x fastest peer",
        "spans/call",
        "prompt in spans",
        "span names / why not run",
    ]
    return _table(header, rows)


def _instructions_table(data: dict[str, Any]) -> str:
    rows = []
    for r in data["instructions"]["rows"]:
        if r.get("status") != "ok":
            rows.append([r["peer"], r["content"], *["-"] * 8, f"not run: {r.get('reason')}"])
            continue
        versions = r.get("versions") or {}
        rows.append(
            [
                r["peer"],
                r["content"],
                versions.get("openai"),
                round(r["plain_base"] / 1e6, 2),
                round(r["plain_added"] / 1e3, 1),
                r.get("plain_ratio_to_fastest_peer"),
                round(r["stream_base"] / 1e6, 2),
                round(r["stream_added"] / 1e3, 1),
                r.get("stream_ratio_to_fastest_peer"),
                r.get("spans_per_call"),
                r.get("prompt_recorded"),
            ]
        )
    header = [
        "peer",
        "content",
        "openai",
        "plain: base M",
        "plain: +k",
        "x fastest peer",
        "stream: base M",
        "stream: +k",
        "x fastest peer",
        "spans/call",
        "prompt in spans",
    ]
    return _table(header, rows)


def _instruction_steps_table(data: dict[str, Any]) -> str:
    part = data["instruction_steps"]
    if part.get("status") != "ok":
        return f"not run: {part.get('reason')}"
    cases, ratios = part["cases"], part["ratio_to_floor"]
    rows = [
        [case, cases[case], floor, cases[floor], ratios.get(case, 1.0)]
        for case, floor in (
            ("floor", "floor"),
            ("floor+content", "floor+content"),
            ("agentotel", "floor"),
            ("agentotel+content", "floor+content"),
        )
    ]
    return _table(["case", "instructions/call", "floor", "floor instructions", "x floor"], rows)


def _steps_table(data: dict[str, Any]) -> str:
    rows = []
    for r in data["steps"]["rows"]:
        if r.get("status") != "ok":
            rows.append([r.get("peer"), r.get("case"), "-", "-", "-", "-", f"not run: {r.get('reason')}"])
            continue
        rows.append([r["peer"], r["case"], r["us"], r["floor"], r["floor_us"], r["added_us"], r["ratio_to_floor"]])
    return _table(["venv", "case", "µs/call", "floor", "floor µs", "+µs", "x floor"], rows)


def _processors_table(data: dict[str, Any]) -> str:
    part = data["processors"]
    if part.get("status") != "ok":
        return f"not run: {part.get('reason')}"
    rows = [
        [
            r["sessions"],
            r["spans_per_s"],
            r["floor_spans_per_s"],
            r["added_us_per_span"],
            r["ratio_to_floor"],
            r["end_us_per_session"],
            r["all_spans_filed"],
            r["llm_calls_priced"],
        ]
        for r in part["rows"]
    ]
    table = _table(
        [
            "open sessions",
            "spans/s (agentotel)",
            "spans/s (bare SDK)",
            "+µs/span",
            "x floor",
            "session end µs (wall)",
            "every span filed",
            "LLM spans priced",
        ],
        rows,
    )
    models = ", ".join(part.get("models_priced", []))
    return f"{table}\n\nPrices resolved (once per model, then cached): {part.get('prices_resolved')} ({models})"


def _reconstruction_table(data: dict[str, Any]) -> str:
    part = data["reconstruction"]
    if part.get("status") != "ok":
        return f"not run: {part.get('reason')}"
    rows = []
    otlp = part.get("otlp_json", {})
    store = part.get("store", {})
    listing = part.get("sessions_list", {})
    replay = part.get("replay", {})

    def status(section: dict[str, Any]) -> str:
        return "" if section.get("status") == "ok" else f"{section.get('status')}: {section.get('reason')}"

    rows.append(
        [
            "session of 100,000 spans from OTLP JSON (read)",
            otlp.get("read_s"),
            "",
            status(otlp) or f"{otlp.get('file_mib')} MiB file, read by {otlp.get('reader', 'standard library json')}",
        ]
    )
    rows.append(["... build_sessions + events", otlp.get("build_s"), "", ""])
    rows.append(["... total", otlp.get("total_s"), "≤ 1", ""])
    if otlp.get("stdlib_read_s") is not None:
        stdlib_total = round(otlp["stdlib_read_s"] + (otlp.get("build_s") or 0), 3)
        rows.append(
            [
                "... total without the fast extra (read by standard library json)",
                stdlib_total,
                "≤ 1",
                f"read {otlp['stdlib_read_s']} s",
            ]
        )
    rows.append(
        [
            "session of 100,000 spans from the store (read)",
            store.get("read_s"),
            "",
            status(store) or f"store writes {_fmt(store.get('write_spans_per_s'))} spans/s",
        ]
    )
    rows.append(["... build_sessions + events", store.get("build_s"), "", ""])
    rows.append(["... total", store.get("total_s"), "≤ 1", ""])
    rows.append(
        ["`agentotel sessions`, 100,000 stored (in process)", listing.get("sessions_s"), "≤ 0.5", status(listing)]
    )
    rows.append(
        [
            "`agentotel sessions`, 100,000 stored (the command)",
            listing.get("command_s"),
            "≤ 0.5",
            f"process start alone: {listing.get('command_startup_s')} s",
        ]
    )
    rows.append(["`agentotel check` over all 100,000", listing.get("check_all_s"), "", ""])
    rows.append([f"text replay, {_fmt(replay.get('events'))} events", replay.get("text_s"), "", status(replay)])
    html_note = (
        f"{replay.get('html_mib')} MiB page"
        if replay.get("html_status") == "ok"
        else f"{replay.get('html_status')}: {replay.get('html_reason')}"
    )
    rows.append([f"HTML replay, {_fmt(replay.get('events'))} events", replay.get("html_s"), "", html_note])
    return _table(["what", "seconds", "target", "note"], [[r[0], _fmt(r[1], 3), r[2], r[3]] for r in rows])


def _memory_table(data: dict[str, Any]) -> str:
    part = data["memory"]
    if part.get("status") != "ok":
        return f"not run: {part.get('reason')}"
    curve = " → ".join(f"{p['rss_mib']:.0f}" for p in part["curve"])
    rows = [[f"{p['spans']:,}", p["rss_mib"]] for p in part["curve"]]
    summary = (
        f"RSS (MiB) every {part['curve'][1]['spans'] if len(part['curve']) > 1 else '-'} spans: {curve}. "
        f"Peak {part['peak_rss_mib']} MiB; growth over the second half {part['second_half_growth_mib']} MiB; "
        f"plateau: {_fmt(part['plateau'])}. Ended sessions kept: {part['ended_sessions_kept']} "
        f"(max_ended_sessions={part['settings']['max_ended_sessions']}, "
        f"max_events_per_session={part['settings']['max_events_per_session']:,}); "
        f"{part['us_per_span_wall']} µs/span wall."
    )
    return _table(["spans", "RSS MiB"], rows) + "\n\n" + summary


def _framework_versions(r: dict[str, Any]) -> str:
    versions = r.get("versions") or {}
    return " / ".join(str(v) for k, v in versions.items() if k not in ("python", "opentelemetry-sdk") and v)


def _frameworks_table(data: dict[str, Any]) -> str:
    rows = []
    for r in data["frameworks"]["rows"]:
        if r.get("status") != "ok":
            rows.append([r["framework"], r["peer"], r["content"], *["-"] * 9, f"not run: {r.get('reason')}"])
            continue
        run = "-"
        if r.get("call_case"):
            run = f"{_fmt(r['call_base_us'])} / +{_fmt(r['call_added_us'])}"
        rows.append(
            [
                r["framework"],
                r["peer"],
                r["content"],
                _framework_versions(r),
                r["base_us"],
                r["added_us"],
                _spread(r["added_per_round_us"]),
                r.get("ratio_to_openinference"),
                run,
                r.get("spans_per_tool_call"),
                r.get("content_recorded"),
                ", ".join(r.get("span_names") or []),
                r.get("note") or "",
            ]
        )
    header = [
        "framework",
        "peer",
        "content",
        "versions (framework / peer)",
        "base µs",
        "+µs",
        "rounds",
        "x OpenInference",
        "whole run: base µs / +µs",
        "spans/tool call",
        "argument in spans",
        "span names / why not run",
        "note",
    ]
    return _table(header, rows)


def _framework_instructions_table(data: dict[str, Any]) -> str:
    rows = []
    for r in data["framework_instructions"]["rows"]:
        if r.get("status") != "ok":
            rows.append([r["framework"], r["peer"], r["content"], *["-"] * 6, f"not run: {r.get('reason')}"])
            continue
        run = "-"
        if r.get("call_case"):
            run = f"{r['call_base'] / 1e3:,.0f} / +{r['call_added'] / 1e3:,.0f}"
        rows.append(
            [
                r["framework"],
                r["peer"],
                r["content"],
                round(r["base"] / 1e3, 1),
                round(r["added"] / 1e3, 1),
                r.get("ratio_to_openinference"),
                run,
                r.get("spans_per_tool_call"),
                r.get("content_recorded"),
                "",
            ]
        )
    header = [
        "framework",
        "peer",
        "content",
        "base k",
        "+k",
        "x OpenInference",
        "whole run: base k / +k",
        "spans/tool call",
        "argument in spans",
        "why not run",
    ]
    return _table(header, rows)


def _measured_line(part: dict[str, Any], machine: dict[str, Any]) -> str:
    load = part.get("load_average") or [None, None]
    return (
        f"Measured {part.get('date')} on {machine['nproc']} cores ({machine['cpu']}), Python {machine['python']}, "
        f"load average {load[0]} at the start and {load[1]} at the end; `{part.get('command')}` spent "
        f"{part.get('elapsed_s')} s on it."
    )


FRAMEWORK_SECTIONS = (
    (
        "frameworks",
        "### 6. Per-tool-call overhead in agent frameworks (CPU µs per tool call; +µs = traced minus untraced, same "
        "process; x OpenInference = agentotel's +µs / OpenInference's)",
        _frameworks_table,
    ),
    (
        "framework_instructions",
        "### 6b. Per-tool-call overhead in agent frameworks, in instructions (callgrind, calling thread; k = "
        "thousands per tool call; content capture off)",
        _framework_instructions_table,
    ),
)


def render_frameworks(data: dict[str, Any]) -> str:
    """The framework tables, each with when and how it was measured (its block of the README)."""
    parts: list[str] = []
    for key, title, table in FRAMEWORK_SECTIONS:
        if key in data:
            parts += [title, _measured_line(data[key], data["machine"]), table(data)]
    targets = _framework_targets(data)
    if targets:
        parts += ["Targets (agentotel adds less than OpenInference):", _targets_table({"targets": targets})]
    return "\n\n".join(parts) + "\n"


def _targets_table(data: dict[str, Any]) -> str:
    rows = [
        [
            t["target"],
            _fmt(t["value"], 3) if isinstance(t["value"], float) else _fmt(t["value"]),
            t["limit"],
            {True: "met", False: "MISSED", None: "not measured"}[t["met"]],
            t["note"],
        ]
        for t in data["targets"]
    ]
    return _table(["target", "value", "limit", "", "note"], rows)


def render(data: dict[str, Any], *, main: bool = False) -> str:
    """The tables, in Markdown (readable in a terminal too); `main`: only the README's main results block (no
    framework tables, no framework targets)."""
    m = data["machine"]
    parts = [
        f"Measured {data['date']} on {m['nproc']} cores ({m['cpu']}), Python {m['python']}, load average "
        f"{m['load_average']} at the start and {m.get('load_average_end')} at the end; `{data['command']}` took "
        f"{data.get('elapsed_s')} s.",
    ]
    kept = data.get("carried_over") or {}
    if kept:
        parts.append(
            "Carried over from earlier runs (not measured by this command): "
            + ", ".join(f"{key} ({date})" for key, date in kept.items())
            + "."
        )
    if "targets" in data:
        shown = data["targets"]
        if main:
            framework_names = {t["target"] for t in _framework_targets(data)}
            shown = [t for t in shown if t["target"] not in framework_names]
        parts += ["### Targets", _targets_table({"targets": shown})]
    sections = (
        (
            "llm",
            "### 1. Per-LLM-call overhead (CPU µs per call; +µs = traced minus uninstrumented, same process)",
            _llm_table,
        ),
        (
            "instructions",
            "### 1b. Per-LLM-call overhead in instructions (callgrind, calling thread; M = millions, +k = thousands "
            "added by tracing, same process)",
            _instructions_table,
        ),
        (
            "steps",
            "### 2. Per-step overhead (CPU µs per call; floor = bare `start_as_current_span`, same process)",
            _steps_table,
        ),
        (
            "instruction_steps",
            "### 2b. Per-step overhead in instructions (callgrind, calling thread, agentotel's venv)",
            _instruction_steps_table,
        ),
        (
            "processors",
            "### 3. Processor cost (spans through agentotel's processors vs the bare SDK, same process)",
            _processors_table,
        ),
        ("reconstruction", "### 4. Reconstruction and replay (wall seconds, best of 3)", _reconstruction_table),
        ("memory", "### 5. Memory (1,000,000 spans in 10,000 sessions, default settings)", _memory_table),
    )
    for key, title, table in sections:
        if key in data:
            parts += [title, table(data)]
    if not main:
        for key, title, table in FRAMEWORK_SECTIONS:
            if key in data:
                parts += [title, table(data)]
    return "\n\n".join(parts) + "\n"


def update_readme(path: Path, text: str, start: str = README_START, end: str = README_END) -> None:
    """Replaces a results section of the README (between its markers, by default the main one) with `text`;
    appends it, with its markers, when the README has none."""
    readme = path.read_text(encoding="utf-8")
    block = f"{start}\n{text}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if pattern.search(readme):
        readme = pattern.sub(lambda _m: block, readme)
    else:
        readme = readme.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(readme, encoding="utf-8")
