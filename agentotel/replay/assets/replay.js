/* agentotel replay page. Reads the session from the JSON block and lays it out.
 *
 * Rules this script keeps:
 *  - data is shown with textContent only; nothing from the session is ever parsed as HTML;
 *  - the timeline is virtualised (a small pool of row elements reused as the list scrolls) and the overview is a
 *    canvas drawn once, so a step costs the same for 10 events as for 10,000;
 *  - Python did all the formatting; this script only places what it is given.
 */
(function () {
  "use strict";

  var t0 = performance.now();
  var data = JSON.parse(document.getElementById("agentotel-data").textContent);
  var tParsed = performance.now();
  var session = data.session;
  var events = data.events;
  var count = events.length;
  var totalMs = data.total_ms > 0 ? data.total_ms : 1;
  var ROW_H = 28;
  var OVERSCAN = 6;
  var current = -1;

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function kindClass(kind) {
    var known = ["llm", "tool", "action", "agent", "session", "operation"];
    return "kind-" + (known.indexOf(kind) >= 0 ? kind : "span");
  }

  // --- header ------------------------------------------------------------------------------------------------

  function renderHeader() {
    document.title = session.name + " \u00b7 agentotel replay";
    $("name").textContent = session.name;
    var state = $("state");
    state.textContent = session.state;
    state.className = "badge state-" + (/^(Success|Fail|Indeterminate|Running)$/.test(session.state) ? session.state : "Running");
    if (session.reason) {
      $("reason").textContent = session.reason;
      $("reason").title = session.reason;
      $("reason").hidden = false;
    }
    var tags = $("tags");
    session.tags.forEach(function (tag) {
      var li = el("li");
      li.appendChild(el("span", "tag", tag));
      tags.appendChild(li);
    });
    var stats = $("stats");
    session.stats.forEach(function (pair) {
      var box = el("div");
      box.appendChild(el("dt", null, pair[0]));
      box.appendChild(el("dd", null, pair[1]));
      stats.appendChild(box);
    });
    if (data.back_url) {
      var back = $("back");
      back.href = data.back_url;
      back.hidden = false;
    }
    var ticks = $("axis-ticks");
    data.axis.forEach(function (tick, i) {
      var place = i === 0 ? "first" : i === data.axis.length - 1 ? "last" : "mid";
      var span = el("span", place + (i > 0 && tick[0] > 0.95 ? " edge" : ""), tick[1]);
      span.style.left = tick[0] * 100 + "%";
      ticks.appendChild(span);
    });
    var slider = $("scrubber");
    slider.max = String(Math.max(0, count - 1));
    if (data.first_error !== null) $("jump-problem").hidden = false;
    renderIO();
  }

  // What the agent was asked and answered: one line each (the whole text on a click), its step one click away.
  function renderIO() {
    var io = data.io || {};
    var box = $("io");
    [
      ["input", "Input"],
      ["output", "Output"],
    ].forEach(function (side) {
      var found = io[side[0]];
      if (!found) return;
      var source = events[found.step];
      var row = el("div", "io-row");
      row.id = "io-" + side[0];
      var dt = el("dt");
      var link = el("button", "io-step", side[1]);
      link.type = "button";
      link.title = "Step " + (found.step + 1) + ": " + (source ? source.label : "");
      link.addEventListener("click", function () {
        go(found.step);
      });
      dt.appendChild(link);
      var dd = el("dd", "io-text", found.text);
      dd.title = found.text;
      dd.addEventListener("click", function () {
        dd.classList.toggle("open");
      });
      row.appendChild(dt);
      row.appendChild(dd);
      box.appendChild(row);
      box.hidden = false;
    });
  }

  // --- timeline: a virtualised list ------------------------------------------------------------------------------

  var rows = $("rows");
  var spacer = $("spacer");
  var pool = [];
  var viewportH = 0;
  var scrollTop = 0;
  var renderQueued = false;

  function makeRow() {
    var row = el("div", "row");
    row.setAttribute("role", "option");
    var off = el("span", "off");
    var lbl = el("span", "lbl");
    var dot = el("span", "dot");
    var name = el("span", "name");
    var mark = el("span", "mark");
    var sum = el("span", "sum");
    lbl.appendChild(dot);
    lbl.appendChild(name);
    lbl.appendChild(mark);
    lbl.appendChild(sum);
    var track = el("span", "track");
    var bar = el("span", "bar");
    track.appendChild(bar);
    row.appendChild(off);
    row.appendChild(lbl);
    row.appendChild(track);
    row._parts = { off: off, lbl: lbl, name: name, mark: mark, sum: sum, bar: bar };
    row._index = -1;
    rows.appendChild(row);
    return row;
  }

  function fillRow(row, i) {
    var e = events[i];
    var p = row._parts;
    row._index = i;
    row.dataset.index = String(i);
    row.className = "row " + kindClass(e.kind) + (e.error ? " failed" : "") + (e.problem ? " problem" : "");
    row.style.transform = "translateY(" + i * ROW_H + "px)";
    p.off.textContent = e.offset;
    p.lbl.style.setProperty("--depth", String(Math.min(e.depth, 12)));
    p.name.textContent = e.label;
    p.mark.textContent = e.problem ? data.problem_mark : "";
    p.sum.textContent = e.summary || (e.error ? e.error.type + ": " + e.error.message : "");
    var left = Math.max(0, Math.min(1, e.t / totalMs));
    var width = e.d == null ? 1 - left : Math.max(0, Math.min(1 - left, e.d / totalMs));
    p.bar.style.left = left * 100 + "%";
    p.bar.style.width = width * 100 + "%";
    row.title = e.label + (e.summary ? "\n" + e.summary : "");
  }

  function ensurePool() {
    var needed = Math.ceil(viewportH / ROW_H) + OVERSCAN * 2 + 1;
    while (pool.length < needed) pool.push(makeRow());
  }

  function renderRows() {
    renderQueued = false;
    ensurePool();
    var first = Math.max(0, Math.floor(scrollTop / ROW_H) - OVERSCAN);
    for (var k = 0; k < pool.length; k++) {
      var row = pool[k];
      // Each index always lands in the same pool slot (index mod pool size), so scrolling by one row refills one
      // element instead of shifting every row's content.
      var i = first + ((k - (first % pool.length) + pool.length) % pool.length);
      var isCurrent = i === current;
      if (i >= count) {
        if (!row.hidden) row.hidden = true;
        isCurrent = false; // a hidden row keeps no mark of the step it showed last
      } else {
        if (row.hidden) row.hidden = false;
        if (row._index !== i) fillRow(row, i);
      }
      if (row.classList.contains("current") !== isCurrent) {
        row.classList.toggle("current", isCurrent);
        row.setAttribute("aria-selected", isCurrent ? "true" : "false");
      }
    }
  }

  function queueRender() {
    if (!renderQueued) {
      renderQueued = true;
      requestAnimationFrame(renderRows);
    }
  }

  function scrollToCurrent() {
    var top = current * ROW_H;
    if (top < scrollTop || top + ROW_H > scrollTop + viewportH) {
      scrollTop = Math.max(0, Math.round(top - viewportH / 2 + ROW_H / 2));
      rows.scrollTop = scrollTop;
    }
  }

  rows.addEventListener(
    "scroll",
    function () {
      scrollTop = rows.scrollTop;
      queueRender();
    },
    { passive: true }
  );

  rows.addEventListener("click", function (ev) {
    var row = ev.target.closest ? ev.target.closest(".row") : null;
    if (row && row.dataset.index !== undefined) go(Number(row.dataset.index));
  });

  // --- overview: the whole session to scale, one canvas drawn once; the cursor on a second canvas -------------

  var overview = $("overview");
  var cursor = $("cursor");
  var ovW = 0;
  var ovH = 0;
  var LANES = 6;
  var maxDepth = 0;
  for (var d = 0; d < count; d++) if (events[d].depth > maxDepth) maxDepth = events[d].depth;
  var PAD = 6;
  var cursorColour = "#c48f00";

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
  }

  function sizeCanvas(canvas) {
    var ratio = window.devicePixelRatio || 1;
    var rect = canvas.getBoundingClientRect();
    canvas.width = Math.max(1, Math.round(rect.width * ratio));
    canvas.height = Math.max(1, Math.round(rect.height * ratio));
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    return rect;
  }

  function xOf(ms) {
    return PAD + (Math.max(0, Math.min(totalMs, ms)) / totalMs) * (ovW - 2 * PAD);
  }

  function drawOverview() {
    var rect = sizeCanvas(overview);
    sizeCanvas(cursor);
    ovW = rect.width;
    ovH = rect.height;
    var ctx = overview.getContext("2d");
    ctx.clearRect(0, 0, ovW, ovH);
    var lanes = Math.min(LANES, maxDepth + 1);
    var laneH = (ovH - 2 * PAD) / lanes;
    var barH = Math.max(2, Math.min(12, laneH - 3));
    var colours = {};
    var kinds = ["llm", "tool", "action", "agent", "session", "operation", "span"];
    kinds.forEach(function (k) {
      colours[k] = cssVar("--k-" + k);
    });
    var err = cssVar("--err");
    cursorColour = cssVar("--current-line");
    // Batched by colour: one fillStyle change per kind, not per event.
    kinds.concat(["error"]).forEach(function (k) {
      ctx.fillStyle = k === "error" ? err : colours[k];
      for (var i = 0; i < count; i++) {
        var e = events[i];
        var isErr = !!e.error;
        if (k === "error" ? !isErr : isErr || (colours[e.kind] ? e.kind : "span") !== k) continue;
        var x = xOf(e.t);
        var w = Math.max(1, (e.d == null ? totalMs - e.t : e.d) / totalMs * (ovW - 2 * PAD));
        var lane = Math.min(e.depth, lanes - 1);
        ctx.fillRect(x, PAD + lane * laneH + (laneH - barH) / 2, w, barH);
      }
    });
    if (data.first_error !== null) {
      var fx = xOf(events[data.first_error].t);
      ctx.fillStyle = err;
      ctx.beginPath();
      ctx.moveTo(fx - 5, 0);
      ctx.lineTo(fx + 5, 0);
      ctx.lineTo(fx, 7);
      ctx.closePath();
      ctx.fill();
    }
    drawCursor();
  }

  function drawCursor() {
    var ctx = cursor.getContext("2d");
    ctx.clearRect(0, 0, ovW, ovH);
    if (current < 0 || !count) return;
    var e = events[current];
    var x = xOf(e.t);
    var w = Math.max(2, (e.d == null ? totalMs - e.t : e.d) / totalMs * (ovW - 2 * PAD));
    // The colour is read once per overview drawing: reading computed styles on every step would force a style
    // recalculation per key press.
    ctx.fillStyle = cursorColour;
    ctx.globalAlpha = 0.25;
    ctx.fillRect(x, 0, w, ovH);
    ctx.globalAlpha = 1;
    ctx.fillRect(Math.round(x) - 1, 0, 2, ovH);
  }

  function indexAtTime(ms) {
    // The last event that started at or before `ms` (events are in start order).
    var lo = 0;
    var hi = count - 1;
    var best = 0;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (events[mid].t <= ms) {
        best = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return best;
  }

  var dragging = false;
  function pointToIndex(ev) {
    var rect = cursor.getBoundingClientRect();
    var ms = ((ev.clientX - rect.left - PAD) / Math.max(1, rect.width - 2 * PAD)) * totalMs;
    go(indexAtTime(ms));
  }
  var wrap = $("overview-wrap");
  wrap.addEventListener("pointerdown", function (ev) {
    if (!count) return;
    dragging = true;
    if (wrap.setPointerCapture) wrap.setPointerCapture(ev.pointerId);
    pointToIndex(ev);
  });
  wrap.addEventListener("pointermove", function (ev) {
    if (dragging) pointToIndex(ev);
  });
  wrap.addEventListener("pointerup", function () {
    dragging = false;
  });

  // --- detail pane ---------------------------------------------------------------------------------------------

  var detail = $("detail");

  function factList(pairs) {
    var dl = el("dl", "facts");
    pairs.forEach(function (pair) {
      if (pair[1] === null || pair[1] === undefined || pair[1] === "") return;
      dl.appendChild(el("dt", null, pair[0]));
      dl.appendChild(el("dd", pair[2] ? "mono" : null, pair[1]));
    });
    return dl;
  }

  function contentBlock(view, kindCls) {
    var box = el("div", "content");
    if (view.messages) {
      view.messages.forEach(function (m) {
        var msg = el("div", "msg " + kindCls);
        msg.appendChild(el("div", "role", m.role || "message"));
        msg.appendChild(el("div", "text", m.text));
        box.appendChild(msg);
      });
    } else if (view.fields) {
      var fields = el("div", "plain");
      view.fields.forEach(function (f) {
        var row = el("div", "field");
        row.appendChild(el("span", "key", f[0]));
        row.appendChild(el("span", "value", f[1]));
        fields.appendChild(row);
      });
      box.appendChild(fields);
    } else {
      var plain = el("div", "plain");
      plain.appendChild(el("div", "value", view.text));
      box.appendChild(plain);
    }
    return box;
  }

  function tokensText(e) {
    if (e.input_tokens == null && e.output_tokens == null) return null;
    var text = (e.input_tokens || 0).toLocaleString("en-US") + " in / " + (e.output_tokens || 0).toLocaleString("en-US") + " out";
    if (e.cache_read_tokens) text += " (" + e.cache_read_tokens.toLocaleString("en-US") + " cached)";
    return text;
  }

  function renderDetail() {
    var e = events[current];
    var frag = document.createDocumentFragment();
    var kindCls = kindClass(e.kind);
    var head = el("div", "detail-head");
    var title = el("h2", null, e.label);
    title.id = "detail-title";
    head.appendChild(title);
    head.appendChild(el("span", "badge kind-badge " + kindCls, e.kind));
    if (e.problem) {
      var mark = el("span", "problem-mark", data.problem_mark);
      mark.id = "detail-problem";
      head.appendChild(mark);
    } else if (e.error) {
      head.appendChild(el("span", "badge failed-badge", "failed"));
    }
    frag.appendChild(head);
    frag.appendChild(
      factList([
        ["Started", "+" + e.offset + "  (" + e.start_time + ")"],
        ["Duration", e.duration_text],
        ["Model", e.model],
        ["Provider", e.provider],
        ["Tokens", tokensText(e)],
        ["Cost", e.cost_text],
        ["Cost so far", e.cost_so_far_text],
        ["Span", e.span_id, true],
        ["Parent span", e.parent_span_id, true],
        ["Session", e.session_id || session.id, true],
      ])
    );
    if (e.error) {
      frag.appendChild(el("h3", null, e.error.ended ? "Ended" : "Error"));
      var box = el("div", "error-box");
      box.id = "detail-error";
      box.appendChild(el("div", "etype", e.error.type));
      if (e.error.message) box.appendChild(el("div", "emsg text", e.error.message));
      if (e.error.stack) {
        var stack = el("pre", "stack", e.error.stack);
        stack.id = "detail-stack";
        box.appendChild(stack);
      }
      if (e.error.stack_full) {
        // Hidden at display time only: the whole recorded traceback is one click away, as the backend has it.
        var full = el("details", "stack-full");
        full.id = "detail-stack-full";
        full.appendChild(el("summary", null, e.error.stack_note + " \u00b7 show the whole traceback"));
        full.appendChild(el("pre", "stack", e.error.stack_full));
        box.appendChild(full);
      }
      frag.appendChild(box);
    }
    if (e.inputs) {
      frag.appendChild(el("h3", null, e.kind === "llm" ? "Prompt" : "Input"));
      var inputs = contentBlock(e.inputs, kindCls);
      inputs.id = "detail-inputs";
      frag.appendChild(inputs);
    }
    if (e.outputs) {
      frag.appendChild(el("h3", null, e.kind === "llm" ? "Completion" : "Output"));
      var outputs = contentBlock(e.outputs, kindCls);
      outputs.id = "detail-outputs";
      frag.appendChild(outputs);
    }
    if (e.content_missing) {
      frag.appendChild(el("p", "note", "Inputs and outputs were not captured (content capture was off)."));
    } else if (e.truncated) {
      frag.appendChild(el("p", "note", "Some content was cut to the configured maximum length."));
    }
    if (e.attributes && e.attributes.length) {
      var details = el("details", "attrs");
      details.appendChild(el("summary", null, "Attributes (" + e.attributes.length + ")"));
      details.appendChild(contentBlock({ fields: e.attributes }, kindCls));
      frag.appendChild(details);
    }
    detail.replaceChildren(frag);
    detail.scrollTop = 0;
  }

  function renderEmpty() {
    detail.replaceChildren(el("p", "note", "This session has no steps."));
    $("ro-step").textContent = "0 / 0";
    $("ro-time").textContent = "\u2013";
    $("ro-cost").textContent = session.cost_text;
    $("ro-tokens").textContent = "0";
    $("scrubber").disabled = true;
  }

  // --- readouts and moving ------------------------------------------------------------------------------------

  function renderReadout() {
    var e = events[current];
    $("ro-step").textContent = current + 1 + " / " + count;
    $("ro-time").textContent = "+" + e.offset;
    var cost = $("ro-cost");
    cost.textContent = e.cost_so_far_text;
    cost.dataset.value = String(e.cost_so_far);
    var tokens = $("ro-tokens");
    tokens.textContent = e.tokens_so_far_text;
    tokens.dataset.value = String(e.tokens_so_far);
  }

  var slider = $("scrubber");

  function go(index) {
    if (!count) return;
    var i = Math.max(0, Math.min(count - 1, Math.round(Number(index)) || 0));
    if (i === current) return;
    current = i;
    if (String(slider.value) !== String(i)) slider.value = String(i);
    document.body.dataset.current = String(i);
    scrollToCurrent();
    renderRows();
    renderReadout();
    renderDetail();
    drawCursor();
  }

  slider.addEventListener("input", function () {
    go(slider.value);
  });
  $("prev").addEventListener("click", function () {
    go(current - 1);
  });
  $("next").addEventListener("click", function () {
    go(current + 1);
  });
  $("jump-problem").addEventListener("click", function () {
    if (data.first_error !== null) go(data.first_error);
  });

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var target = ev.target;
    var tag = target && target.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && target.type !== "range")) return;
    var to = null;
    switch (ev.key) {
      case "ArrowRight":
        to = current + (ev.shiftKey ? 10 : 1);
        break;
      case "ArrowLeft":
        to = current - (ev.shiftKey ? 10 : 1);
        break;
      case "Home":
        to = 0;
        break;
      case "End":
        to = count - 1;
        break;
      case "e":
      case "E":
      case "f":
      case "F":
        if (data.first_error === null) return;
        to = data.first_error;
        break;
      default:
        return;
    }
    // Also stops the focused slider from moving itself: one key press is one step.
    ev.preventDefault();
    go(to);
  });

  // --- start ---------------------------------------------------------------------------------------------------

  function measure() {
    viewportH = rows.clientHeight || 400;
  }

  // `#step=N` opens step N (from 1), `#problem` the first failing step; with neither, the step Python chose
  // (the first failure, if any).
  function stepOfHash() {
    var step = /^#step=(\d+)$/.exec(location.hash);
    if (step) return Number(step[1]) - 1;
    if (location.hash === "#problem" && data.first_error !== null) return data.first_error;
    return null;
  }

  renderHeader();
  measure();
  if (count) {
    var start = stepOfHash();
    spacer.style.height = count * ROW_H + "px";
    $("timeline").style.setProperty("--rows-h", count * ROW_H + "px");
    go(start === null ? data.open : start);
    window.addEventListener("hashchange", function () {
      var to = stepOfHash();
      if (to !== null) go(to);
    });
  } else {
    renderEmpty();
  }
  drawOverview();

  if (window.ResizeObserver) {
    var lastW = 0;
    new ResizeObserver(function () {
      measure();
      queueRender();
      var w = wrap.clientWidth;
      if (w !== lastW) {
        lastW = w;
        drawOverview();
      }
    }).observe(document.body);
  }
  if (window.matchMedia) {
    var scheme = window.matchMedia("(prefers-color-scheme: dark)");
    if (scheme.addEventListener) scheme.addEventListener("change", drawOverview);
  }

  var tReady = performance.now();
  var api = {
    count: count,
    firstError: data.first_error,
    metrics: { parseMs: tParsed - t0, initMs: tReady - t0, readyAtMs: tReady, firstFrameAtMs: null },
    go: go,
    get index() {
      return current;
    },
  };
  requestAnimationFrame(function () {
    setTimeout(function () {
      api.metrics.firstFrameAtMs = performance.now();
    }, 0);
  });
  window.agentotelReplay = api;
})();
