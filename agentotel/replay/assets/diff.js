/* agentotel behaviour diff page. Reads the diff from the JSON block and lays it out.
 *
 * Rules this script keeps:
 *  - data is shown with textContent only; nothing from the sessions is ever parsed as HTML;
 *  - Python did all the formatting; this script only places what it is given, folds runs of identical steps
 *    and moves between the rows that differ.
 */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("agentotel-data").textContent);
  var rows = data.rows;
  var CONTEXT = 1;
  var current = -1;
  var elements = [];
  var changes = [];
  var folds = [];

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

  function stateClass(state) {
    return "badge state-" + (/^(Success|Fail|Indeterminate|Running)$/.test(state) ? state : "Running");
  }

  // --- header ------------------------------------------------------------------------------------------------

  function renderSide(node, side) {
    var h2 = el("h2");
    h2.appendChild(el("span", "which", side.title));
    h2.appendChild(el("span", "name", side.name));
    h2.appendChild(el("span", stateClass(side.state), side.state));
    node.appendChild(h2);
    if (side.reason) node.appendChild(el("div", "reason", side.reason));
    var dl = el("dl", "facts");
    side.facts.forEach(function (pair) {
      dl.appendChild(el("dt", null, pair[0]));
      dl.appendChild(el("dd", null, pair[1]));
    });
    node.appendChild(dl);
  }

  function renderHeader() {
    document.title = data.before.name + " \u2192 " + data.after.name + " \u00b7 agentotel diff";
    var verdict = $("verdict");
    verdict.textContent = data.verdict;
    verdict.classList.add(data.changed ? "changed" : "same");
    $("summary").textContent = data.summary;
    renderSide($("side-before"), data.before);
    renderSide($("side-after"), data.after);
    var body = $("figures").tBodies[0];
    data.figures.forEach(function (figure) {
      var tr = el("tr", figure.changed ? "changed" : null);
      tr.appendChild(el("th", null, figure.label));
      tr.appendChild(el("td", null, figure.text));
      body.appendChild(tr);
    });
    var notes = $("notes");
    data.notes.forEach(function (note) {
      notes.appendChild(el("li", null, note));
    });
    if (data.ignore.length) notes.appendChild(el("li", "muted", "Ignored: " + data.ignore.join(", ")));
    if (data.first !== null) $("jump-first").hidden = false;
  }

  // --- rows --------------------------------------------------------------------------------------------------

  function card(step, which) {
    if (!step) return el("div", "card empty " + which);
    var box = el("div", "card " + which + " " + kindClass(step.kind));
    var head = el("div", "head");
    head.appendChild(el("span", "num", "#" + step.number));
    head.appendChild(el("span", "dot"));
    head.appendChild(el("span", "label", step.label));
    box.appendChild(head);
    box.appendChild(el("div", "facts-line", step.facts));
    if (step.error) box.appendChild(el("div", "err", step.error));
    if (step.fields.length) {
      var details = el("details");
      details.appendChild(el("summary", null, "Content (" + step.fields.map(function (f) { return f[0]; }).join(", ") + ")"));
      step.fields.forEach(function (f) {
        var row = el("div", "field");
        row.appendChild(el("span", "key", f[0]));
        row.appendChild(el("pre", "value", f[1]));
        details.appendChild(row);
      });
      box.appendChild(details);
    }
    return box;
  }

  function renderRow(row, index) {
    var node = el("div", "drow status-" + row.status + (row.first ? " first" : ""));
    node.id = "row-" + index;
    node.dataset.index = String(index);
    node.dataset.status = row.status;
    var pair = el("div", "pair");
    pair.appendChild(card(row.before, "before"));
    var mid = el("div", "mid", row.mark.trim() ? row.mark : "=");
    mid.title = row.status;
    pair.appendChild(mid);
    pair.appendChild(card(row.after, "after"));
    node.appendChild(pair);
    if (row.first) {
      var mark = el("div", "mark-first", data.divergence_mark);
      mark.id = "first-mark";
      node.insertBefore(mark, pair);
    }
    if (row.changes.length) {
      var list = el("div", "changes");
      row.changes.forEach(function (change) {
        var line = el("div", "change");
        line.appendChild(el("span", "path", change.path));
        line.appendChild(el("span", "was", change.before));
        line.appendChild(el("span", "now", change.after));
        list.appendChild(line);
      });
      if (row.more) list.appendChild(el("div", "more", "\u2026 and " + row.more + " more difference(s)"));
      node.appendChild(list);
    }
    return node;
  }

  function shownByContext() {
    var shown = [];
    var i;
    for (i = 0; i < rows.length; i++) shown.push(false);
    for (i = 0; i < rows.length; i++) {
      if (rows[i].status === "same") continue;
      for (var j = Math.max(0, i - CONTEXT); j <= Math.min(rows.length - 1, i + CONTEXT); j++) shown[j] = true;
    }
    if (!changes.length) for (i = 0; i < Math.min(rows.length, 2 * CONTEXT + 1); i++) shown[i] = true;
    return shown;
  }

  function makeFold(members) {
    var button = el("button", "fold", "\u25b8 " + members.length + " same step(s)");
    button.type = "button";
    button.addEventListener("click", function () {
      openFold(fold);
    });
    var fold = { button: button, members: members, open: false };
    members.forEach(function (i) {
      elements[i].hidden = true;
      elements[i]._fold = fold;
    });
    folds.push(fold);
    return button;
  }

  function openFold(fold) {
    if (fold.open) return;
    fold.open = true;
    fold.members.forEach(function (i) {
      elements[i].hidden = false;
    });
    fold.button.hidden = true;
  }

  function renderRows() {
    var container = $("rows");
    if (!rows.length) {
      container.appendChild(el("p", "empty-note", "Neither session has any steps."));
      return;
    }
    rows.forEach(function (row, i) {
      if (row.status !== "same") changes.push(i);
    });
    var frag = document.createDocumentFragment();
    rows.forEach(function (row, i) {
      elements.push(renderRow(row, i));
    });
    var shown = shownByContext();
    var run = [];
    function flush() {
      if (run.length) frag.appendChild(makeFold(run));
      run.forEach(function (i) {
        frag.appendChild(elements[i]);
      });
      run = [];
    }
    for (var i = 0; i < rows.length; i++) {
      if (shown[i]) {
        flush();
        frag.appendChild(elements[i]);
      } else {
        run.push(i);
      }
    }
    flush();
    container.appendChild(frag);
  }

  // --- moving ------------------------------------------------------------------------------------------------

  function go(index) {
    if (!rows.length) return;
    var i = Math.max(0, Math.min(rows.length - 1, Math.round(Number(index)) || 0));
    if (current >= 0) elements[current].classList.remove("current");
    current = i;
    var node = elements[i];
    if (node._fold) openFold(node._fold);
    node.classList.add("current");
    document.body.dataset.current = String(i);
    if (node.scrollIntoView) node.scrollIntoView({ block: "center" });
  }

  function nextChange(step) {
    if (!changes.length) return;
    var target = null;
    for (var k = 0; k < changes.length; k++) {
      var i = step > 0 ? changes[k] : changes[changes.length - 1 - k];
      if (step > 0 ? i > current : i < current) {
        target = i;
        break;
      }
    }
    go(target === null ? (step > 0 ? changes[changes.length - 1] : changes[0]) : target);
  }

  $("jump-first").addEventListener("click", function () {
    if (data.first !== null) go(data.first);
  });
  $("next-change").addEventListener("click", function () {
    nextChange(1);
  });
  $("prev-change").addEventListener("click", function () {
    nextChange(-1);
  });
  $("show-same").addEventListener("change", function (ev) {
    var all = ev.target.checked;
    folds.forEach(function (fold) {
      if (all) {
        openFold(fold);
      }
    });
  });

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var tag = ev.target && ev.target.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT" || tag === "INPUT") return;
    switch (ev.key) {
      case "e":
      case "E":
        if (data.first === null) return;
        go(data.first);
        break;
      case "n":
      case "N":
        nextChange(1);
        break;
      case "p":
      case "P":
        nextChange(-1);
        break;
      default:
        return;
    }
    ev.preventDefault();
  });

  // --- start ---------------------------------------------------------------------------------------------------

  renderHeader();
  renderRows();
  if (location.hash === "#first" && data.first !== null) go(data.first);

  window.agentotelDiff = {
    count: rows.length,
    first: data.first,
    changes: changes.slice(),
    go: go,
    get index() {
      return current;
    },
  };
})();
