"""Xen Orchestra's connector, the npm `xen-api` package (the version
pinned in tests/clients/xen-api/package.json), manages a Xenia host over
HTTPS: tests/clients/xen-api/check.mjs connects, watches events into the
library's object cache, installs and boots a VM from "Tiny Linux" and
sees its power state change arrive through events, runs Async calls,
gets XenAPI errors, cleans up and disconnects; it prints one line per
check. Run once with the library's default transport (JSON-RPC, as XO
uses it) and once forced to XML-RPC.

Needs node and npm (scripts/install-deps.sh --test) and, the first time
or when the lock file changes, the npm registry for `npm ci`."""

import os
import shutil
import subprocess

import xenia

CLIENT = os.path.join(xenia.ROOT, "tests", "clients", "xen-api")
D = None
PORT = None


def setup_module():
    global D, PORT
    PORT = xenia.free_port()
    D = xenia.Daemon(name="npm", extra_args=["--listen", "127.0.0.1:%d" % PORT]).start()


def teardown_module():
    D.cleanup()


def tool(name):
    path = shutil.which(name)
    assert path, "%s not found: run scripts/install-deps.sh --test" % name
    return path


def ensure_node_modules():
    """npm ci when node_modules is missing or older than the lock file
    (npm records each install in node_modules/.package-lock.json)."""
    lock = os.path.join(CLIENT, "package-lock.json")
    stamp = os.path.join(CLIENT, "node_modules", ".package-lock.json")
    if os.path.exists(stamp) and os.path.getmtime(stamp) >= os.path.getmtime(lock):
        return
    p = subprocess.run([tool("npm"), "ci", "--no-audit", "--no-fund"], cwd=CLIENT,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=240)
    assert p.returncode == 0, "npm ci failed (exit %d):\n%s" % (
        p.returncode, p.stdout.decode(errors="replace")[-4000:])


def run_check(*args):
    ensure_node_modules()
    with open(os.path.join(D.data_dir, "root-password")) as f:
        password = f.read().strip()
    # the password goes through the environment, not the command line
    env = dict(os.environ, XENIA_PASSWORD=password, XENIA_CHECK_TIMEOUT="150")
    argv = [tool("node"), "check.mjs", *args, "https://127.0.0.1:%d" % PORT, "root"]
    try:
        p = subprocess.run(argv, cwd=CLIENT, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=180)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("check.mjs did not exit within 180 s; its output:\n%s%s" % (
            (e.stdout or b"").decode(errors="replace"),
            (e.stderr or b"").decode(errors="replace")[-4000:])) from e
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0 and "# all checks passed" in out, (
        "check.mjs %s exited %d:\n%s\n--- stderr ---\n%s"
        % (" ".join(args), p.returncode, out, err[-4000:]))
    assert "not ok" not in out, out
    return out


@xenia.time_limit(420)
def test_xen_api_npm_client():
    # (check.mjs also asserts that the auto transport settled on JSON-RPC)
    out = run_check()
    assert out.count("\nok - ") >= 15, out


@xenia.time_limit(300)
def test_xen_api_npm_client_over_xmlrpc():
    run_check("--transport", "xml-rpc")


def xmlrpc_session():
    import ssl
    import xmlrpc.client
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = xmlrpc.client.ServerProxy("https://127.0.0.1:%d" % PORT, context=ctx)
    with open(os.path.join(D.data_dir, "root-password")) as f:
        r = s.session.login_with_password("root", f.read().strip())
    assert r["Status"] == "Success", r
    return s, r["Value"]


def test_listed_types_are_served():
    """The library fetches <type>.get_all_records for every type that
    system.listMethods lists; xapi lists none for session, user and LVHD
    (and session refs are secrets: no one may list them)."""
    s, sess = xmlrpc_session()
    methods = s.system.listMethods()
    for cls in ("session", "user", "LVHD"):
        for verb in ("get_all", "get_all_records", "get_all_records_where"):
            assert "%s.%s" % (cls, verb) not in methods, (cls, verb)
    assert "VM.get_all_records" in methods and "task.get_all_records" in methods
    r = s.session.get_all(sess)
    assert r["ErrorDescription"] == ["MESSAGE_METHOD_UNKNOWN", "session.get_all"], r
    r = s.session.get_all_records(sess)
    assert r["ErrorDescription"][0] == "MESSAGE_METHOD_UNKNOWN", r
    assert s.session.get_record(sess, sess)["Status"] == "Success"


def test_event_batch_types_over_xmlrpc():
    """event.from over XML-RPC as xapi encodes it: valid_ref_counts are
    int32 (<i4>), so clients get numbers; snapshots are typed records
    (datetimes tagged), as get_record returns them."""
    import xmlrpc.client
    s, sess = xmlrpc_session()
    batch = getattr(s.event, "from")(sess, ["vm", "host"], "", 0.0)
    assert batch["Status"] == "Success", batch
    batch = batch["Value"]
    counts = batch["valid_ref_counts"]
    assert isinstance(counts["vm"], int) and counts["vm"] >= 2, counts
    assert isinstance(counts["task"], int), counts
    host = [e for e in batch["events"] if e["class"] == "host"][0]
    assert isinstance(host["id"], str) and host["operation"] == "add", host
    rec = s.host.get_record(sess, host["ref"])["Value"]
    for field in ("API_version_major", "memory_overhead", "enabled", "other_config"):
        assert type(host["snapshot"][field]) is type(rec[field]), field
    dates = [f for f, v in rec.items() if isinstance(v, xmlrpc.client.DateTime)]
    assert dates, "host records have datetime fields"
    for f in dates:
        assert isinstance(host["snapshot"][f], xmlrpc.client.DateTime), f
