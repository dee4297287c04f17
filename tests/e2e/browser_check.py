#!/usr/bin/env python3
"""Headless-Chromium check of the web chat that `moeforge serve` answers at GET /.

    browser_check.py SERVER_URL OUT_PNG [--api-key KEY] [--message TEXT] [--timeout S]

Starts Debian's `chromium` (--headless=new, --remote-debugging-port=0) and drives it over the
Chrome DevTools Protocol with a small websocket client written here on the standard library (no
packages needed). It loads the page, types a message into the input, clicks Send, waits until the
streamed answer has finished (the page sets <body data-state="idle"> again), sends a follow-up the
same way (--turns, default 2: the second request carries the history), and checks that

  - the page shows the model /props names;
  - each answer is non-empty, finished normally, and no error card is shown;
  - when GET /props says experts > 0: the answer has token spans coloured by their dominant expert,
    the legend lists every expert, hovering a token (a real mouse move) opens the layer x expert
    heatmap with one cell per MoE layer and expert, and the expert-load chart has one bar per MoE
    layer (plus the total) with segments in it, whose token count grew with each turn.

The screenshot (Page.captureScreenshot, with the heatmap open for a MoE) goes to OUT_PNG. Exit
status 0 when everything holds; otherwise 1 and a message naming what failed.
"""
import argparse
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request


class CheckFailed(Exception):
    pass


# ---------------------------------------------------------------- websocket (RFC 6455, client side)
class WebSocket:
    def __init__(self, url, timeout=30.0):
        u = urllib.parse.urlparse(url)
        if u.scheme != "ws":
            raise ValueError("only ws:// is supported: " + url)
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = u.path + ("?" + u.query if u.query else "")
        req = (f"GET {path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise ConnectionError("websocket handshake refused: " + status.decode(errors="replace"))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("websocket closed by the browser")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def recv(self):
        """The next text message (fragments joined; pings answered)."""
        message, opcode_of_message = b"", None
        while True:
            b0, b1 = self._read(2)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:                      # ping
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:                      # pong
                continue
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            if opcode in (0x1, 0x2):
                message, opcode_of_message = payload, opcode
            elif opcode == 0x0:
                message += payload
            if fin and opcode_of_message is not None:
                return message.decode()

    def close(self):
        try:
            self._send_frame(0x8, struct.pack(">H", 1000))
        except OSError:
            pass
        self.sock.close()


# ---------------------------------------------------------------- Chrome DevTools Protocol
class CDP:
    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.events = []

    def call(self, method, timeout=30.0, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.ws.sock.settimeout(max(0.1, deadline - time.time()))
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise CheckFailed(f"CDP {method}: {msg['error'].get('message')}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
        raise CheckFailed(f"CDP {method}: no answer in {timeout} s")

    def wait_event(self, name, timeout=30.0):
        deadline = time.time() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["method"] == name:
                    return self.events.pop(i)
            if time.time() > deadline:
                raise CheckFailed(f"no {name} event in {timeout} s")
            self.ws.sock.settimeout(max(0.1, deadline - time.time()))
            try:
                msg = json.loads(self.ws.recv())
            except socket.timeout:
                continue
            if "method" in msg:
                self.events.append(msg)

    def js(self, expression, timeout=30.0):
        """Evaluates an expression in the page and returns its value (JSON-serialisable)."""
        r = self.call("Runtime.evaluate", timeout=timeout, expression=expression,
                      returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            text = (d.get("exception") or {}).get("description") or d.get("text")
            raise CheckFailed(f"page script error: {text}")
        return r["result"].get("value")

    def wait_js(self, expression, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.js(expression):
                return
            time.sleep(0.1)
        raise CheckFailed(f"timed out after {timeout} s waiting for {what}")

    def close(self):
        self.ws.close()


def start_chromium(profile_dir, width, height):
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not exe:
        raise CheckFailed("no chromium on PATH (apt-get install -y --no-install-recommends chromium)")
    args = [exe, "--headless=new", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={profile_dir}", f"--window-size={width},{height}",
            "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-sync", "--mute-audio", "--hide-scrollbars",
            "--force-color-profile=srgb", "about:blank"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.insert(1, "--no-sandbox")            # chromium refuses to run as root with its sandbox
    log = open(os.path.join(profile_dir, "chromium.log"), "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    port_file = os.path.join(profile_dir, "DevToolsActivePort")
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise CheckFailed(f"chromium exited with status {proc.returncode}; see {log.name}")
        if os.path.exists(port_file):
            lines = open(port_file).read().split()
            if lines:
                return proc, int(lines[0])
        time.sleep(0.1)
    proc.kill()
    raise CheckFailed("chromium did not open its DevTools port within 30 s")


def page_target(port):
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                for t in json.load(r):
                    if t.get("type") == "page" and t.get("webSocketDebuggerUrl"):
                        return t["webSocketDebuggerUrl"]
        except OSError:
            pass
        time.sleep(0.2)
    raise CheckFailed("chromium lists no page target")


def get_props(server, api_key):
    req = urllib.request.Request(server.rstrip("/") + "/props")
    if api_key:
        req.add_header("Authorization", "Bearer " + api_key)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raise CheckFailed(f"GET /props answered {e.code}: {e.read()[:200]!r}")
    except OSError as e:
        raise CheckFailed(f"GET /props failed: {e}")


def mouse(cdp, kind, x, y, **kw):
    cdp.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, **kw)


def click(cdp, x, y):
    mouse(cdp, "mouseMoved", x, y)
    mouse(cdp, "mousePressed", x, y, button="left", clickCount=1)
    mouse(cdp, "mouseReleased", x, y, button="left", clickCount=1)


def center(cdp, selector):
    r = cdp.js(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
        if (!e) return null; e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
        return r.width && r.height ? [r.left + r.width / 2, r.top + r.height / 2] : null; }})()""")
    if not r:
        raise CheckFailed(f"no visible element {selector}")
    return r


def run(args):
    props = get_props(args.server, args.api_key)
    experts = int(props.get("experts") or 0)
    layers = props.get("moe_layers") or []
    print(f"props: model={props.get('model')} experts={experts} top_k={props.get('top_k')} moe_layers={len(layers)}")

    profile = tempfile.mkdtemp(prefix="moeforge-browser-")
    proc = None
    cdp = None
    try:
        t0 = time.time()
        proc, port = start_chromium(profile, args.width, args.height)
        cdp = CDP(page_target(port))
        print(f"chromium up on DevTools port {port} in {time.time() - t0:.1f} s")
        cdp.call("Page.enable")
        cdp.call("Runtime.enable")
        cdp.call("Emulation.setDeviceMetricsOverride", width=args.width, height=args.height,
                 deviceScaleFactor=1, mobile=False)
        if args.dark:
            cdp.call("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "dark"}])
        console_errors = []
        if args.api_key:
            # the page keeps the key in localStorage; put it there before the page's script runs
            cdp.call("Page.addScriptToEvaluateOnNewDocument",
                     source=f"try {{ localStorage.setItem('moeforge.apiKey', {json.dumps(args.api_key)}); }} catch (e) {{}}")
        cdp.call("Page.navigate", url=args.server)
        cdp.wait_event("Page.loadEventFired", timeout=30)
        cdp.wait_js("document.body && document.body.dataset.state && document.body.dataset.state !== 'loading'",
                    30, "the page to load /props")
        st = cdp.js("document.body.dataset.state")
        if st != "idle":
            err = cdp.js("(document.querySelector('.card') || {}).textContent || ''")
            raise CheckFailed(f"page did not become ready (state {st!r}): {err.strip()}")
        shown = cdp.js("document.getElementById('model-name').textContent")
        if shown != props.get("model"):
            raise CheckFailed(f"page shows model {shown!r}, /props says {props.get('model')!r}")

        messages = [args.message] + [args.followup] * (args.turns - 1)
        load_tokens = []
        for turn, message in enumerate(messages):
            # type the message like a user: click the input, insert the text, click Send
            x, y = center(cdp, "#input")
            click(cdp, x, y)
            cdp.call("Input.insertText", text=message)
            typed = cdp.js("document.getElementById('input').value")
            if typed != message:
                raise CheckFailed(f"the input holds {typed!r} after typing")
            x, y = center(cdp, "#send")
            click(cdp, x, y)
            cdp.wait_js(f"document.querySelectorAll('.msg.assistant').length === {turn + 1}", 10,
                        f"turn {turn + 1}'s request to start")
            t1 = time.time()
            cdp.wait_js("document.body.dataset.state === 'idle' && "
                        "[...document.querySelectorAll('.msg.assistant')].pop().dataset.state !== 'streaming'",
                        args.timeout, f"turn {turn + 1}'s streamed answer to finish")
            res = cdp.js("""(() => {
                const m = [...document.querySelectorAll('.msg.assistant')].pop();
                const card = m.querySelector('.card');
                return { text: m.querySelector('.bubble').textContent, state: m.dataset.state,
                         finish: m.dataset.finish || null, error: card ? card.textContent : null,
                         user: ([...document.querySelectorAll('.msg.user .bubble')].pop() || {}).textContent,
                         meta: [...m.querySelectorAll('.meta > span')].map(e => e.textContent).join(', '),
                         tokens: Number(document.getElementById('load-chart').dataset.tokens || 0) };
            })()""")
            if res["error"]:
                raise CheckFailed(f"turn {turn + 1}: the page shows an error: {res['error'].strip()}")
            if res["user"] != message:
                raise CheckFailed(f"turn {turn + 1}: the user bubble shows {res['user']!r}")
            if not res["text"].strip():
                raise CheckFailed(f"turn {turn + 1}: the answer is empty (message state {res['state']!r})")
            if res["state"] != "done":
                raise CheckFailed(f"turn {turn + 1}: the answer ended in state {res['state']!r}")
            load_tokens.append(res["tokens"])
            print(f"turn {turn + 1}: streamed in {time.time() - t1:.1f} s ({res['finish']}; {res['meta']}): "
                  f"{res['text'][:100]!r}")

        if experts > 0:
            visible = "document.getElementById('router').getBoundingClientRect().width > 0"
            if not cdp.js(visible):
                # narrow windows keep the router panel closed: open it with its header button
                x, y = center(cdp, "#toggle-router")
                click(cdp, x, y)
                mouse(cdp, "mouseMoved", 1, args.height - 1)
            moe = cdp.js("""(() => {
                const toks = [...document.querySelectorAll('.msg.assistant .bubble .tok[data-expert]')];
                const colored = toks.filter(t => {
                    const c = getComputedStyle(t).backgroundColor;
                    return c && c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent';
                });
                return { toks: toks.length, colored: colored.length,
                         experts: [...new Set(toks.map(t => t.dataset.expert))].sort(),
                         legend: document.querySelectorAll('#legend .legend-item').length,
                         routerVisible: document.getElementById('router').getBoundingClientRect().width > 0,
                         rows: document.querySelectorAll('#load-chart .load-row:not(.total)').length,
                         totalSegs: document.querySelectorAll('#load-chart .load-row.total .seg').length,
                         segs: document.querySelectorAll('#load-chart .load-row:not(.total) .seg').length,
                         tokens: Number(document.getElementById('load-chart').dataset.tokens || 0) };
            })()""")
            print(f"router view: {moe['toks']} token spans ({moe['colored']} coloured; dominant experts {moe['experts']}), "
                  f"legend {moe['legend']}, load chart {moe['rows']} layer rows / {moe['segs']} segments over {moe['tokens']} tokens")
            if moe["toks"] == 0:
                raise CheckFailed("no token spans coloured by expert in the answer")
            if moe["colored"] != moe["toks"]:
                raise CheckFailed(f"{moe['toks'] - moe['colored']} token spans have no expert colour")
            if moe["legend"] != experts:
                raise CheckFailed(f"the legend lists {moe['legend']} experts, /props says {experts}")
            if not moe["routerVisible"]:
                raise CheckFailed("the router panel is not visible")
            if moe["rows"] != len(layers) or moe["segs"] < len(layers) or moe["totalSegs"] < 1 or moe["tokens"] < 1:
                raise CheckFailed(f"the expert-load chart did not render: {moe}")
            if any(b <= a for a, b in zip(load_tokens, load_tokens[1:])):
                raise CheckFailed(f"the expert-load chart did not add up the turns' tokens: {load_tokens}")

            # hover a real token with the mouse; the tooltip's heatmap must appear
            # (a token of the last answer, preferring one with a word in it, so the tooltip has room)
            x, y = cdp.js(
                """(() => { const t = [...[...document.querySelectorAll('.msg.assistant')].pop().querySelectorAll('.tok')];
                const e = t.find(e => /\\w\\w/.test(e.textContent)) || t[0];
                e.scrollIntoView({block: 'center'}); const r = e.getClientRects()[0];
                return [r.left + Math.min(r.width / 2, 6), r.top + r.height / 2]; })()""")
            mouse(cdp, "mouseMoved", x - 40, y - 40)
            mouse(cdp, "mouseMoved", x, y)
            cdp.wait_js("!document.getElementById('tooltip').hidden", 5, "the heatmap tooltip after hovering a token")
            hm = cdp.js("""(() => { const t = document.getElementById('tooltip'); const r = t.getBoundingClientRect();
                return { cells: t.querySelectorAll('.hm .cell').length, cols: t.querySelectorAll('.hm .xh').length,
                         rows: t.querySelectorAll('.hm .yh').length, w: r.width, h: r.height,
                         names: [...t.querySelectorAll('.hm .xh')].map(e => e.title),
                         inView: r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth }; })()""")
            print(f"heatmap: {hm['rows']} layers x {hm['cols']} experts, {hm['cells']} cells, {hm['w']:.0f}x{hm['h']:.0f} px")
            if hm["cells"] != experts * len(layers) or hm["cols"] != experts or hm["rows"] != len(layers):
                raise CheckFailed(f"heatmap has {hm['rows']}x{hm['cols']} ({hm['cells']} cells), expected {len(layers)}x{experts}")
            if not hm["inView"] or hm["w"] < 50 or hm["h"] < 30:
                raise CheckFailed(f"heatmap tooltip is not fully on screen: {hm}")
            # move onto a cell: the value read-out must name a layer, an expert and a probability
            cx, cy = cdp.js("""(() => { const c = document.querySelector('#tooltip .hm .cell');
                const r = c.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()""")
            mouse(cdp, "mouseMoved", cx, cy)
            cdp.wait_js("/layer .* p = [0-9.]+/.test(document.querySelector('#tooltip .tt-val').textContent)", 5,
                        "the heatmap cell value on hover")
            print("heatmap cell:", cdp.js("document.querySelector('#tooltip .tt-val').textContent"))

        shot = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        data = base64.b64decode(shot["data"])
        os.makedirs(os.path.dirname(os.path.abspath(args.out_png)), exist_ok=True)
        with open(args.out_png, "wb") as f:
            f.write(data)
        print(f"screenshot: {args.out_png} ({len(data) // 1024} KiB)")
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
    ap.add_argument("server", help="the server's base URL, e.g. http://127.0.0.1:8080/")
    ap.add_argument("out_png", help="where the screenshot goes")
    ap.add_argument("--api-key", default="", help="for a server started with --api-key")
    ap.add_argument("--message", default="Tell me a short story about the river town bakery.")
    ap.add_argument("--followup", default="What happened next?", help="the message of the later turns")
    ap.add_argument("--turns", type=int, default=2, help="messages sent one after the other (multi-turn)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds the answer may take")
    ap.add_argument("--width", type=int, default=1440)
    ap.add_argument("--height", type=int, default=900)
    ap.add_argument("--dark", action="store_true", help="emulate prefers-color-scheme: dark")
    args = ap.parse_args()
    if not args.server.endswith("/"):
        args.server += "/"
    try:
        run(args)
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    except (OSError, ConnectionError) as e:
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print("OK: the web chat works")
    return 0


if __name__ == "__main__":
    sys.exit(main())
