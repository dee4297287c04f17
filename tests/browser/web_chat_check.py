#!/usr/bin/env python3
"""The web chat in a real browser (label "browser"): a tiny MoE trained by `moeforge train`
(serve_client.tiny_model), the real `moeforge serve` on a free loopback port, and
tests/e2e/browser_check.py driving headless Chromium against its GET / page (two turns, tokens
coloured by expert, the heatmap on hover, the expert-load chart). The screenshot goes to WORK_DIR.
usage: web_chat_check.py WORK_DIR   ($MOEFORGE_BIN is the CLI)
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import serve_client  # noqa: E402

WORK = os.path.abspath(sys.argv[1])
serve_client.WORK = WORK
server = serve_client.Server(serve_client.tiny_model())
try:
    rc = subprocess.run([sys.executable, os.path.join(HERE, "..", "e2e", "browser_check.py"), server.url + "/",
                         os.path.join(WORK, "web-chat.png")]).returncode
finally:
    server.stop()
sys.exit(rc)
