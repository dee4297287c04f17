"""Drives `moeforge chat` through a real pseudo-terminal, as a person at a keyboard would.

Usage: chat_pty.py MOEFORGE_BIN MODEL_DIR WORK_DIR
Checks: Ctrl-C during an answer stops it and keeps the conversation; the next message is
answered; the up arrow recalls the last message; a \"\"\" block, a trailing backslash and a
bracketed paste are each one turn; /save then /load gives the same conversation back; two
quick Ctrl-Cs during an answer, and Ctrl-C at an empty prompt, end the chat.
Exits non-zero with the terminal's transcript on the first failed check.
"""
import json
import os
import pty
import select
import sys
import termios
import time

BIN, MODEL, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
PROMPT = b"\x1b[?2004h"  # bracketed paste switched on: the chat is waiting for a line
UP = b"\x1b[A"
CTRL_C = b"\x03"
NO_TERMINAL = 77  # the exit status the C++ test reads as "skip: no pseudo-terminal here"


class Chat:
    def __init__(self, *flags):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ["OMP_NUM_THREADS"] = "1"
            os.execv(BIN, [BIN, "chat", "-m", MODEL, "--temperature", "0", *flags])
        self.out = b""
        self.status = None

    def pump(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # the child has gone: the terminal is closed
                return False
            if not data:
                return False
            self.out += data
        return True

    def fail(self, what):
        print("FAILED:", what)
        print("---- terminal transcript ----")
        print(self.out.decode(errors="replace"))
        sys.exit(1)

    def wait_for(self, needle, since, timeout=60, what=None):
        """Waits until `needle` appears in the output after byte offset `since`; returns where."""
        end = time.time() + timeout
        while time.time() < end:
            at = self.out.find(needle, since)
            if at >= 0:
                return at
            if not self.pump(0.1):
                break
        self.fail(what or f"no {needle!r} within {timeout} s")

    def prompts(self):
        return self.out.count(PROMPT)

    def wait_prompt(self, count_before, timeout=60, what="the prompt did not come back"):
        end = time.time() + timeout
        while time.time() < end:
            if self.prompts() > count_before:
                return
            if not self.pump(0.1):
                break
        self.fail(what)

    def send(self, data):
        os.write(self.fd, data)

    def say(self, text, timeout=60):
        """Types a line and waits for the answer to end (the next prompt)."""
        before = self.prompts()
        self.send(text)
        self.wait_prompt(before, timeout, f"no prompt after {text!r}")

    def wait_exit(self, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pump(0.2)
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
            self.pump(0.1)
        os.kill(self.pid, 9)
        self.fail("the chat did not exit")


def saved(path):
    with open(path) as f:
        return json.load(f)["messages"]


def check(chat, cond, what):
    if not cond:
        chat.fail(what)


def interrupting():
    """A long answer (thousands of tokens) is stopped by Ctrl-C; the chat goes on."""
    chat = Chat("-n", "3000")
    chat.wait_prompt(0, 120, "no first prompt")
    mark = len(chat.out)
    chat.send(b"the river\r")
    # Some of the answer has been written: it is under way.
    chat.wait_for(b"\r\n", mark, what="the message was not taken")
    start = len(chat.out)
    while len(chat.out) < start + 40:
        check(chat, chat.pump(0.05), "the chat died while answering")
    before = chat.prompts()
    chat.send(CTRL_C)
    chat.wait_for(b"[answer stopped", start, 30, "Ctrl-C did not stop the answer")
    chat.wait_prompt(before, 30, "no prompt after Ctrl-C")
    # The conversation is kept: a second message is answered (and stopped the same way).
    mark = len(chat.out)
    chat.send(b"bakers\r")
    chat.wait_for(b"\r\n", mark)
    start = len(chat.out)
    while len(chat.out) < start + 40:
        check(chat, chat.pump(0.05), "the chat died while answering")
    before = chat.prompts()
    chat.send(CTRL_C)
    chat.wait_for(b"[answer stopped", start, 30, "Ctrl-C did not stop the second answer")
    chat.wait_prompt(before, 30)
    path = os.path.join(WORK, "stopped.json")
    chat.say(f"/save {path}\r".encode())
    messages = saved(path)
    check(chat, [m["role"] for m in messages] == ["user", "assistant"] * 2, f"saved turns: {messages}")
    check(chat, messages[0]["content"] == "the river" and messages[2]["content"] == "bakers", f"{messages}")
    for answer in (messages[1]["content"], messages[3]["content"]):
        # Written in part: not empty, far from the 3000 tokens asked for.
        check(chat, 0 < len(answer) < 2500, f"a stopped answer of {len(answer)} characters")
    # Two quick Ctrl-Cs while answering end the chat.
    mark = len(chat.out)
    chat.send(b"the mill\r")
    chat.wait_for(b"\r\n", mark)
    start = len(chat.out)
    while len(chat.out) < start + 20:
        check(chat, chat.pump(0.05), "the chat died while answering")
    # A person's two presses are a fraction of a second apart (two signals sent together would
    # merge into one pending SIGINT).
    chat.send(CTRL_C)
    chat.pump(0.15)
    chat.send(CTRL_C)
    status = chat.wait_exit()
    check(chat, status in (0, 130), f"exit status {status} after two Ctrl-Cs")
    print(f"interrupting: ok (two Ctrl-Cs: status {status})")


def editing():
    """History, multi-line input, /save and /load, Ctrl-C on an empty line."""
    chat = Chat("-n", "12")
    chat.wait_prompt(0, 120, "no first prompt")
    chat.say(b"the river\r")
    # The up arrow brings the last message back; Enter sends it again.
    mark = len(chat.out)
    chat.send(UP)
    chat.wait_for(b"the river", mark, 10, "the up arrow did not recall the last message")
    chat.say(b"\r")
    # A """ block is one turn, empty lines included. Every line typed brings a prompt back (the
    # continuation prompt or, after the answer, the next one): waiting for it keeps the keys in
    # step with the chat.
    for line in (b'"""\r', b"line one\r", b"\r", b'line two"""\r'):
        chat.say(line)
    # A trailing backslash continues.
    chat.say(b"first half \\\r")
    chat.say(b"second half\r")
    # A bracketed paste of several lines is one turn: the pasted newline continues, Enter sends.
    before, mark = chat.prompts(), len(chat.out)
    chat.send(b"\x1b[200~pasted one\rpasted two\x1b[201~")
    chat.wait_prompt(before, 10, "no continuation prompt inside the paste")
    chat.wait_for(b"pasted two", mark, 10, "the paste's second line was not shown")
    chat.say(b"\r")
    # Ctrl-C on a line being typed drops it, without leaving the chat. (The terminal discards
    # keys it has not handed over yet when Ctrl-C comes, so wait until the line is shown.)
    mark = len(chat.out)
    chat.send(b"never sent")
    chat.wait_for(b"never sent", mark, 10, "typed text not shown")
    before = chat.prompts()
    chat.send(CTRL_C)
    chat.wait_prompt(before, 10, "no fresh prompt after Ctrl-C on a typed line")
    first = os.path.join(WORK, "first.json")
    chat.say(f"/save {first}\r".encode())
    messages = saved(first)
    users = [m["content"] for m in messages if m["role"] == "user"]
    expected = ["the river", "the river", "line one\n\nline two", "first half \nsecond half", "pasted one\npasted two"]
    check(chat, users == expected, f"user turns {users}, expected {expected}")
    check(chat, [m["role"] for m in messages] == ["user", "assistant"] * 5, f"roles: {messages}")
    check(chat, all(m["content"] for m in messages), f"an empty answer: {messages}")
    # /reset forgets; /load brings the conversation back and shows it.
    chat.say(b"/reset\r")
    empty = os.path.join(WORK, "empty.json")
    chat.say(f"/save {empty}\r".encode())
    check(chat, saved(empty) == [], "/reset left turns")
    mark = len(chat.out)
    chat.say(f"/load {first}\r".encode())
    chat.wait_for(b"[loaded 10 messages", mark, 10, "/load did not say what it loaded")
    chat.wait_for(b"> pasted one", mark, 10, "/load did not show the conversation")
    again = os.path.join(WORK, "again.json")
    chat.say(f"/save {again}\r".encode())
    check(chat, saved(again) == messages, "/load did not restore the saved turns")
    # The restored conversation goes on.
    chat.say(b"bread\r")
    chat.say(f"/save {again}\r".encode())
    check(chat, saved(again)[:10] == messages and len(saved(again)) == 12, "no turn after /load")
    # A broken file is an error naming it, and the chat stays.
    bad = os.path.join(WORK, "bad.json")
    with open(bad, "w") as f:
        f.write('{"messages": [{"role": "robot", "content": "x"}]}')
    mark = len(chat.out)
    chat.say(f"/load {bad}\r".encode())
    chat.wait_for(b"bad.json: messages[0].role", mark, 10, "a bad file's error does not name file and key")
    # Ctrl-C on an empty line ends the chat, leaving the terminal as it was.
    chat.send(CTRL_C)
    status = chat.wait_exit()
    check(chat, status == 0, f"exit status {status} after Ctrl-C on an empty line")
    check(chat, chat.out.rstrip().endswith(b"\x1b[?2004l"), "bracketed paste left on at exit")
    # The terminal is back in its ordinary mode: lines and echo, as a shell expects it.
    lflag = termios.tcgetattr(chat.fd)[3]
    check(chat, lflag & termios.ICANON and lflag & termios.ECHO, f"terminal left in raw mode (lflag {lflag:#o})")
    print("editing: ok")


if __name__ == "__main__":
    try:
        for fd in os.openpty():
            os.close(fd)
    except OSError as e:
        print(f"no pseudo-terminal on this machine: {e}")
        sys.exit(NO_TERMINAL)
    os.makedirs(WORK, exist_ok=True)
    editing()
    interrupting()
