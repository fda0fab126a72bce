"""The web console's server side: xeniad serves the built console
(build/web) on GET, with content types, caching and no way out of the
web directory, while POST / stays XML-RPC; GET /console upgrades to a
websocket carrying a running VM's serial console (keystrokes in, output
out) or, for a VM with VGA, its VNC stream; sessions without the role,
bad handshakes and plain GETs are refused. The daemon listens on plain
HTTP on loopback here; the browser tests (tests/e2e) go through HTTPS.

The websocket client is node's (tests/integration/ws_client.mjs)."""

import http.client
import os
import re
import shutil
import subprocess
import xmlrpc.client

import xenia

D = None
PORT = None
HERE = os.path.dirname(os.path.abspath(__file__))
WEB = os.path.join(xenia.BUILD, "web")


def setup_module():
    global D, PORT
    assert os.path.exists(os.path.join(WEB, "index.html")), "build/web is not built (make)"
    PORT = xenia.free_port()
    D = xenia.Daemon(name="web", extra_args=["--listen", "127.0.0.1:%d" % PORT,
                                             "--plain-http"]).start()


def teardown_module():
    D.cleanup()


def get(path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def ws_client(path, send=None, expect=None, timeout=90):
    node = shutil.which("node")
    assert node, "node not found: scripts/install-deps.sh"
    argv = [node, "--experimental-websocket", "--no-warnings", os.path.join(HERE, "ws_client.mjs"),
            "ws://127.0.0.1:%d%s" % (PORT, path)]
    argv += [a for a in (send, expect) if a is not None]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace").strip()


UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


def test_page_and_assets_served():
    status, h, body = get("/")
    assert status == 200 and h["content-type"].startswith("text/html"), (status, h)
    assert b'<div id="app">' in body
    assert "default-src 'self'" in h["content-security-policy"]
    assert h["cache-control"] == "no-cache" and h["etag"]
    # revalidation: unchanged file, 304 and no body
    status, _, body = get("/", {"If-None-Match": h["etag"]})
    assert status == 304 and body == b"", status
    script = re.search(rb'src="(/assets/[^"]+\.js)"', open(os.path.join(WEB, "index.html"), "rb").read())
    status, h, body = get(script.group(1).decode())
    assert status == 200 and h["content-type"].startswith("text/javascript"), (status, h)
    assert "immutable" in h["cache-control"]
    assert body == open(os.path.join(WEB, script.group(1).decode().lstrip("/")), "rb").read()


def test_no_way_out_of_the_web_dir():
    with open(os.path.join(D.data_dir, "root-password")) as f:
        password = f.read().strip().encode()
    for path in ("/../xapi.db", "/assets/../../root-password", "/%2e%2e/root-password",
                 "/.hidden", "/nothing-here.js", "/assets/"):
        status, _, body = get(path)
        assert status == 404, (path, status)
        assert password not in body


def test_xmlrpc_still_on_post_root():
    with open(os.path.join(D.data_dir, "root-password")) as f:
        password = f.read().strip()
    s = xmlrpc.client.ServerProxy("http://127.0.0.1:%d/" % PORT)
    r = s.session.login_with_password("root", password, "2.21", "test")
    assert r["Status"] == "Success", r
    assert s.VM.get_all(r["Value"])["Status"] == "Success"


def console_ref(uuid, protocol):
    vm = D.api("VM.get_by_uuid", uuid)
    for c in D.api("VM.get_consoles", vm):
        if D.api("console.get_protocol", c) == protocol:
            return c
    return None


@xenia.time_limit(150)
def test_serial_console_over_websocket():
    uuid = D.install("web-ws")
    D.xe("vm-start", "uuid=" + uuid)
    con = console_ref(uuid, "vt100")
    assert con and console_ref(uuid, "rfb") is None, "a kernel-booted VM has no VGA console"
    # refusals first: no session, a plain GET, a bad key, an unknown console
    status, _, _ = get("/console?ref=%s" % con, UPGRADE)
    assert status == 403, status
    path = "/console?ref=%s&session_id=%s" % (con, D.session)
    status, _, _ = get(path)
    assert status == 400, status
    status, _, _ = get(path, dict(UPGRADE, **{"Sec-WebSocket-Key": "short"}))
    assert status == 400, status
    status, _, _ = get("/console?ref=OpaqueRef:nope&session_id=%s" % D.session, UPGRADE)
    assert status == 404, status
    # keystrokes go in, the guest's output comes back (it boots meanwhile)
    rc, out = ws_client(path + "&scrollback=4096", "echo $((6*7))-over-ws\n", "42-over-ws")
    assert rc == 0 and out.startswith("OK"), out
    # and xe console, on the same hub, still works alongside
    with D.console(uuid) as c:
        c.wait_prompt()
        assert c.run("echo $((7*6))") == "42"
    D.xe("vm-shutdown", "uuid=" + uuid, "--force")


@xenia.time_limit(150)
def test_vnc_over_websocket():
    uuid = D.install("web-vga")
    D.vm_set(uuid, PV_kernel="", HVM_boot_policy="BIOS order")
    D.xe("vm-start", "uuid=" + uuid)
    con = console_ref(uuid, "rfb")
    assert con, "a VM booted by firmware has an rfb console"
    # the first thing a VNC server says: its RFB version
    rc, out = ws_client("/console?ref=%s&session_id=%s" % (con, D.session))
    assert rc == 0 and out.startswith("FIRST " + b"RFB 003.008\n".hex()), out
    D.xe("vm-shutdown", "uuid=" + uuid, "--force")
    # once the VM is off, its console records go and the endpoint says so
    status, _, _ = get("/console?ref=%s&session_id=%s" % (con, D.session), UPGRADE)
    assert status == 404, status
