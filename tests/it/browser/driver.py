#!/usr/bin/env python3
"""Opens an HTML page in headless Chromium over the DevTools protocol (on a
pipe: --remote-debugging-pipe, no sockets, no third-party module) and prints,
as JSON, what the tests of `inspect --html` judge: console messages and
uncaught exceptions, every network request the page attempted, the figures the
DOM shows (`data-v` of elements with an id, the space map's marks) and the
screenshots written (1280x800 and 390x844, full page).

  driver.py PAGE.html OUT_DIR [EXPR]

EXPR, if given, is evaluated in the page after load and its value returned
as "eval". Chromium is `$CHROMIUM` or `chromium` on PATH.
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time

page, out_dir = sys.argv[1], sys.argv[2]
extra = sys.argv[3] if len(sys.argv) > 3 else None
chromium = os.environ.get("CHROMIUM", "chromium")
profile = tempfile.mkdtemp(prefix="etcdsnap-chromium-")
# Chromium reads commands on fd 3 and writes answers on fd 4: the pipe ends
# are moved above 10 first, so that placing them at 3 and 4 in the child
# cannot clobber one another.
import fcntl


def high(fd):
    h = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return h


to_r, to_w = (high(f) for f in os.pipe())
from_r, from_w = (high(f) for f in os.pipe())


def child():
    os.dup2(to_r, 3)
    os.dup2(from_w, 4)


proc = subprocess.Popen(
    [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
     "--disable-extensions", "--disable-background-networking", "--disable-sync",
     "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"],
    close_fds=False, preexec_fn=child,
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
os.close(to_r)
os.close(from_w)
buf = b""
next_id = 0
events = []


def read_message(deadline):
    global buf
    while b"\0" not in buf:
        if time.time() > deadline:
            raise TimeoutError("no answer from Chromium")
        chunk = os.read(from_r, 1 << 16)
        if not chunk:
            raise EOFError("Chromium closed the pipe")
        buf += chunk
    msg, buf = buf.split(b"\0", 1)
    return json.loads(msg)


def call(method, params=None, session=None, timeout=30):
    global next_id
    next_id += 1
    msg = {"id": next_id, "method": method, "params": params or {}}
    if session:
        msg["sessionId"] = session
    os.write(to_w, json.dumps(msg).encode() + b"\0")
    deadline = time.time() + timeout
    while True:
        m = read_message(deadline)
        if m.get("id") == next_id:
            if "error" in m:
                raise RuntimeError(f"{method}: {m['error']}")
            return m.get("result", {})
        events.append(m)


def wait_event(name, session, timeout=30):
    deadline = time.time() + timeout
    for i, e in enumerate(events):
        if e.get("method") == name and e.get("sessionId") == session:
            events.pop(i)
            return e
    while True:
        m = read_message(deadline)
        if m.get("method") == name and m.get("sessionId") == session:
            return m
        events.append(m)


result = {"console": [], "exceptions": [], "requests": [], "screenshots": []}
try:
    target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Network", "Log"):
        call(f"{domain}.enable", session=session)
    url = "file://" + os.path.abspath(page)
    call("Page.navigate", {"url": url}, session=session)
    wait_event("Page.loadEventFired", session)
    time.sleep(0.3)
    dom = call("Runtime.evaluate", {"returnByValue": True, "expression": """(() => {
        const v = {};
        const body = document.body;
        document.querySelectorAll('[id][data-v]').forEach(e => { v[e.id] = e.getAttribute('data-v'); });
        const cells = Array.from(document.querySelectorAll('svg.map g.cell')).map(g => ({
            resource: g.getAttribute('data-resource'), namespace: g.getAttribute('data-namespace'),
            live: Number(g.getAttribute('data-live')), history: Number(g.getAttribute('data-history')),
            objects: Number(g.getAttribute('data-objects'))}));
        const objects = Array.from(document.querySelectorAll('svg.map rect.object')).map(r => ({
            key: r.getAttribute('data-key'), bytes: Number(r.getAttribute('data-bytes'))}));
        const rows = {};
        document.querySelectorAll('table[id]').forEach(t => { rows[t.id] = t.tBodies[0].rows.length; });
        return {figures: v, cells: cells, objects: objects, rows: rows, scripts: document.querySelectorAll('script').length,
                title: document.title, text: body ? body.innerText : document.documentElement.textContent,
                width: document.documentElement.scrollWidth};
    })()"""}, session=session)["result"]["value"]
    result["dom"] = dom
    if extra:
        result["eval"] = call("Runtime.evaluate", {"returnByValue": True, "expression": extra},
                              session=session)["result"].get("value")
    for w, h in ((1280, 800), (390, 844)):
        call("Emulation.setDeviceMetricsOverride",
             {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": w < 600}, session=session)
        time.sleep(0.2)
        width = call("Runtime.evaluate", {"returnByValue": True,
                     "expression": "document.documentElement.scrollWidth"}, session=session)["result"]["value"]
        shot = call("Page.captureScreenshot", {"format": "png"}, session=session)
        path = os.path.join(out_dir, f"{os.path.splitext(os.path.basename(page))[0]}-{w}x{h}.png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        result["screenshots"].append({"path": path, "width": w, "scrollWidth": width})
    # Whatever arrived on the way.
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.consoleAPICalled":
            result["console"].append({"type": p.get("type"),
                                      "text": " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))})
        elif m == "Log.entryAdded":
            entry = p.get("entry", {})
            result["console"].append({"type": entry.get("level"), "text": entry.get("text"), "source": entry.get("source")})
        elif m == "Runtime.exceptionThrown":
            result["exceptions"].append(p.get("exceptionDetails", {}).get("text"))
        elif m == "Network.requestWillBeSent":
            u = p.get("request", {}).get("url", "")
            if u != url:
                result["requests"].append(u)
finally:
    try:
        call("Browser.close", timeout=5)
    except Exception:
        pass
    proc.wait(timeout=10)
    subprocess.run(["rm", "-rf", profile])
print(json.dumps(result))
