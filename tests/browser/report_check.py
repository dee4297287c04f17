#!/usr/bin/env python3
"""Headless-Chromium check of a static report page (`moeforge plot`, `moeforge inspect --data -o`).

    report_check.py PAGE.html --kind plot|routing [--runs N] [--shot SELECTOR:HEIGHT:OUT.png ...]

Opens the file in Debian's `chromium` over the DevTools protocol (the client in
tests/e2e/browser_check.py) and checks what a reader sees, by layout rather than by markup:

  plot     every chart has at least two numbered ticks on each axis, inside its drawing and not
           overlapping each other; an axis title on both axes; legend entries that do not overlap;
           every series drawn (a line, or a dot for a single point); a log axis says so; every
           heatmap has a colour bar with numbered ticks; with --runs N the runs table has N rows
           and the loss chart's legend at least N entries;
  routing  the dispatch-accuracy explanation is shown, the colour bar has its numbered ticks,
           table cells are coloured;
  both     nothing sticks out of the page sideways, no script error.

Each --shot scrolls to the first element matching SELECTOR and saves HEIGHT px of the page from
there (the full width) as a PNG. Exit status 0 when everything holds, else 1 naming what failed.
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from browser_check import CDP, CheckFailed, page_target, start_chromium  # noqa: E402

# Boxes are page-layout rectangles [left, top, right, bottom]; helpers shared by the checks.
PAGE_HELPERS = """
window.__box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
window.__overlap = (a, b) => a[0] < b[2] - 0.5 && b[0] < a[2] - 0.5 && a[1] < b[3] - 0.5 && b[1] < a[3] - 0.5;
window.__inside = (a, b) => a[0] >= b[0] - 1 && a[1] >= b[1] - 1 && a[2] <= b[2] + 1 && a[3] <= b[3] + 1;
window.__visible = e => { const b = __box(e); return b[2] - b[0] > 0 && b[3] - b[1] > 0; };
"""

PLOT_FACTS = """(() => {
  const problems = [];
  const charts = [...document.querySelectorAll('figure.chart')];
  for (const f of charts) {
    const name = f.querySelector('figcaption').textContent;
    const svg = f.querySelector('svg'), sb = __box(svg);
    if (sb[2] - sb[0] < 200 || sb[3] - sb[1] < 100) { problems.push(name + ': chart is ' + (sb[2]-sb[0]) + 'x' + (sb[3]-sb[1]) + ' px'); continue; }
    if (svg.querySelector('text') && svg.textContent.trim() === 'no data') continue;
    for (const axis of ['x', 'y']) {
      const ticks = [...svg.querySelectorAll('text.tick.' + axis)];
      if (ticks.length < 2) problems.push(name + ': ' + ticks.length + ' ' + axis + ' tick labels');
      for (const t of ticks) {
        if (!t.textContent.trim() || !__visible(t)) problems.push(name + ': an empty or invisible ' + axis + ' tick');
        else if (!__inside(__box(t), sb)) problems.push(name + ': ' + axis + ' tick ' + t.textContent + ' is cut off');
      }
      for (let i = 1; i < ticks.length; ++i)
        if (__overlap(__box(ticks[i - 1]), __box(ticks[i])))
          problems.push(name + ': ' + axis + ' ticks ' + ticks[i - 1].textContent + ' and ' + ticks[i].textContent + ' overlap');
      const title = svg.querySelector('text.axis-title.' + axis);
      if (!title || !title.textContent.trim() || !__inside(__box(title), sb)) problems.push(name + ': no visible ' + axis + ' axis title');
    }
    if (svg.dataset.scale === 'log' && !/log scale/.test(svg.querySelector('text.axis-title.y').textContent))
      problems.push(name + ': a log axis that does not say so');
    const items = [...svg.querySelectorAll('g.legend-item')];
    for (let i = 0; i < items.length; ++i) {
      if (!__inside(__box(items[i]), sb)) problems.push(name + ': legend entry ' + items[i].textContent + ' is cut off');
      for (let j = i + 1; j < items.length; ++j)
        if (__overlap(__box(items[i]), __box(items[j])))
          problems.push(name + ': legend entries ' + items[i].textContent + ' and ' + items[j].textContent + ' overlap');
    }
    for (const s of svg.querySelectorAll('g.series')) {
      const n = Number(s.dataset.points);
      const line = s.querySelector('polyline'), dots = [...s.querySelectorAll('circle.marker')];
      const drawn = (line && __visible(line)) || (dots.length > 0 && dots.every(__visible));
      if (n > 0 && !drawn) problems.push(name + ': series ' + s.dataset.label + ' (' + n + ' points) is not visible');
      if (n === 1 && dots.length !== 1) problems.push(name + ': single-point series ' + s.dataset.label + ' has no dot');
    }
    if (items.length !== svg.querySelectorAll('g.series').length) problems.push(name + ': legend and series differ in number');
  }
  const heatmaps = [...document.querySelectorAll('figure.heatmap')];
  for (const h of heatmaps) {
    const name = h.querySelector('figcaption').textContent;
    const bar = h.querySelector('svg.color-scale');
    if (!bar) { problems.push(name + ': no colour scale'); continue; }
    for (const t of bar.querySelectorAll('text'))
      if (!__inside(__box(t), __box(bar))) problems.push(name + ': colour scale text "' + t.textContent + '" is cut off');
    const ticks = [...h.querySelectorAll('svg.color-scale text.scale-tick')].filter(__visible);
    if (ticks.length < 2 || ticks.some(t => !/[0-9]/.test(t.textContent))) problems.push(name + ': colour scale without numbers');
    if (!h.querySelectorAll('rect.cell').length) problems.push(name + ': no cells');
    if (h.querySelectorAll('text.row-label').length === 0) problems.push(name + ': no row labels');
  }
  const loss = charts.find(f => f.querySelector('figcaption').textContent === 'Loss');
  return { problems, charts: charts.length, heatmaps: heatmaps.length,
           runs: document.querySelectorAll('table.runs tr').length - 1,
           lossLegend: loss ? loss.querySelectorAll('g.legend-item').length : 0,
           markers: document.querySelectorAll('circle.marker').length };
})()"""

ROUTING_FACTS = """(() => {
  const problems = [];
  const p = document.getElementById('dispatch-accuracy');
  if (!p || !__visible(p) || !/Dispatch accuracy/.test(p.textContent)) problems.push('no visible explanation of dispatch accuracy');
  for (const bar of document.querySelectorAll('svg.color-scale'))
    for (const t of bar.querySelectorAll('text'))
      if (!__inside(__box(t), __box(bar))) problems.push('colour scale text "' + t.textContent + '" is cut off');
  const ticks = [...document.querySelectorAll('svg.color-scale text.scale-tick')].filter(__visible).map(t => t.textContent);
  if (ticks.length < 2 || ticks.some(t => !/[0-9]/.test(t))) problems.push('colour scale ticks: ' + JSON.stringify(ticks));
  const cells = [...document.querySelectorAll('td[title]')];
  const coloured = cells.filter(c => getComputedStyle(c).backgroundColor !== 'rgba(0, 0, 0, 0)');
  if (!cells.length || coloured.length !== cells.length) problems.push(coloured.length + ' of ' + cells.length + ' cells coloured');
  const acc = [...document.querySelectorAll('td.accuracy')].map(c => c.textContent);
  return { problems, ticks, cells: cells.length, tables: document.querySelectorAll('table').length, accuracy: acc };
})()"""


def screenshot(cdp, selector, height, out, width):
    top = cdp.js(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
        return e ? e.getBoundingClientRect().top + window.scrollY : null; }})()""")
    if top is None:
        raise CheckFailed(f"--shot: no element {selector}")
    top = max(0, top - 12)
    total = cdp.js("document.documentElement.scrollHeight")
    height = min(height, total - top)
    shot = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                    clip={"x": 0, "y": top, "width": width, "height": height, "scale": 1})
    data = base64.b64decode(shot["data"])
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "wb") as f:
        f.write(data)
    print(f"screenshot: {out} ({width}x{int(height)} px, {len(data) // 1024} KiB)")


def run(args):
    profile = tempfile.mkdtemp(prefix="moeforge-report-")
    proc = cdp = None
    try:
        proc, port = start_chromium(profile, args.width, args.height)
        cdp = CDP(page_target(port))
        cdp.call("Page.enable")
        cdp.call("Runtime.enable")
        cdp.call("Emulation.setDeviceMetricsOverride", width=args.width, height=args.height,
                 deviceScaleFactor=1, mobile=False)
        cdp.call("Page.navigate", url="file://" + os.path.abspath(args.page))
        cdp.wait_event("Page.loadEventFired", timeout=30)
        errors = [e for e in cdp.events if e["method"] == "Runtime.exceptionThrown"]
        if errors:
            raise CheckFailed(f"script error on the page: {errors[0]['params']['exceptionDetails'].get('text')}")
        cdp.js(PAGE_HELPERS)
        facts = cdp.js(PLOT_FACTS if args.kind == "plot" else ROUTING_FACTS)
        wide = cdp.js("[document.documentElement.scrollWidth, window.innerWidth]")
        if wide[0] > wide[1]:
            facts["problems"].append(f"the page is {wide[0]} px wide in a {wide[1]} px window")
        if args.kind == "plot":
            print(f"plot: {facts['charts']} charts, {facts['heatmaps']} heatmaps, {facts['runs']} runs, "
                  f"{facts['markers']} point markers, loss legend {facts['lossLegend']} entries")
            if facts["charts"] < 3:
                facts["problems"].append(f"only {facts['charts']} charts")
            if args.runs and facts["runs"] != args.runs:
                facts["problems"].append(f"runs table has {facts['runs']} rows, expected {args.runs}")
            if args.runs and facts["lossLegend"] < args.runs:
                facts["problems"].append(f"loss legend has {facts['lossLegend']} entries for {args.runs} runs")
        else:
            print(f"routing: {facts['tables']} tables, {facts['cells']} cells, scale {facts['ticks']}, "
                  f"dispatch accuracy {facts['accuracy']}")
        for shot in args.shot:
            selector, height, out = shot.split(":", 2)
            screenshot(cdp, selector, float(height), out, args.width)
        if facts["problems"]:
            raise CheckFailed("; ".join(facts["problems"][:12]))
    finally:
        if cdp:
            cdp.close()
        if proc:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("page", help="the HTML file")
    ap.add_argument("--kind", choices=["plot", "routing"], required=True)
    ap.add_argument("--runs", type=int, default=0, help="plot: runs the page must show")
    ap.add_argument("--shot", action="append", default=[], metavar="SELECTOR:HEIGHT:OUT.png")
    ap.add_argument("--width", type=int, default=820)
    ap.add_argument("--height", type=int, default=1000)
    args = ap.parse_args()
    t0 = time.time()
    try:
        run(args)
    except CheckFailed as e:
        print(f"FAIL: {args.page}: {e}", file=sys.stderr)
        return 1
    except (OSError, ConnectionError) as e:
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"OK: {args.page} reads well in Chromium ({time.time() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
