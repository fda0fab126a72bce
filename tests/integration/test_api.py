"""The XenAPI over HTTP as other people's clients see it: Python's
standard xmlrpc.client driving a VM through its life (install, start, the
power-state change arriving through event.from, an Async call and its
task result, shutdown), and hostile input on the wire: oversized bodies,
deep nesting, invalid UTF-8, XML entities, slow clients, CORS
preflight. The daemon must answer each with an error and keep serving."""

import json
import os
import subprocess
import socket
import threading
import time
import xmlrpc.client

import xenia

D = None
PORT = None


def setup_module():
    global D, PORT
    PORT = xenia.free_port()
    D = xenia.Daemon(name="api", extra_args=["--listen", "127.0.0.1:%d" % PORT, "--plain-http",
                                              "--http-idle-timeout", "2"]).start()


def teardown_module():
    D.cleanup()


def proxy():
    return xmlrpc.client.ServerProxy("http://127.0.0.1:%d" % PORT)


def login(s):
    pw = open(os.path.join(D.data_dir, "root-password")).read().strip()
    r = s.session.login_with_password("root", pw, "2.21", "test")
    assert r["Status"] == "Success", r
    return r["Value"]


def ok(r):
    assert r["Status"] == "Success", r
    return r["Value"]


def raw(data, timeout=10):
    """Send raw bytes over TCP and return everything the daemon answers."""
    with socket.create_connection(("127.0.0.1", PORT), timeout=timeout) as c:
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                return out
            out += chunk


def post(path, body, ctype="application/json"):
    head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            "Connection: close\r\n\r\n" % (path, ctype, len(body))).encode()
    return raw(head + body)


def still_serving():
    s = proxy()
    assert login(s).startswith("OpaqueRef:")


@xenia.time_limit(240)
def test_xmlrpc_client_drives_a_vm():
    s = proxy()
    sess = login(s)
    tmpl = [r for r, v in ok(s.VM.get_all_records(sess)).items() if v["name_label"] == "Tiny Linux"][0]
    # Async clone: a task at once, its result an XML-RPC fragment naming the VM
    task = ok(s.Async.VM.clone(sess, tmpl, "xmlrpc-vm"))
    xenia.wait_for(lambda: ok(s.task.get_status(sess, task)) != "pending", 30, 0.05,
                   what="the clone task")
    assert ok(s.task.get_status(sess, task)) == "success"
    result = ok(s.task.get_result(sess, task))
    assert result.startswith("<value>OpaqueRef:") and result.endswith("</value>"), result
    vm = result[len("<value>"):-len("</value>")]
    ok(s.VM.provision(sess, vm))
    ok(s.VM.set_is_a_template(sess, vm, False))
    assert "start" in ok(s.VM.get_allowed_operations(sess, vm))
    token = ok(s.event.__getattr__("from")(sess, ["vm"], "", 0.0))["token"]
    ok(s.VM.start(sess, vm, False, False))
    # the change to Running arrives as an event on a blocked event.from
    seen = None
    deadline = time.monotonic() + 30
    while seen is None and time.monotonic() < deadline:
        batch = ok(s.event.__getattr__("from")(sess, ["vm"], token, 5.0))
        token = batch["token"]
        assert int(batch["valid_ref_counts"]["vm"]) >= 3
        for e in batch["events"]:
            if e["ref"] == vm and e["snapshot"]["power_state"] == "Running":
                seen = e
    assert seen and seen["class"] == "vm" and seen["operation"] == "mod", seen
    r = s.VM.start(sess, vm, False, False)
    assert r["ErrorDescription"][0] == "VM_BAD_POWER_STATE", r
    assert r["ErrorDescription"][1:] == [vm, "halted", "running"], r
    ok(s.VM.hard_shutdown(sess, vm))
    assert ok(s.VM.get_power_state(sess, vm)) == "Halted"
    ok(s.VM.destroy(sess, vm))
    ok(s.session.logout(sess))


def test_wrong_parameter_types_and_counts():
    s = proxy()
    sess = login(s)
    r = s.VM.get_all_records(sess, "extra")
    assert r["ErrorDescription"][0] == "MESSAGE_PARAMETER_COUNT_MISMATCH", r
    vm = list(ok(s.VM.get_all(sess)))[0]
    r = s.VM.set_VCPUs_max(sess, vm, "many")
    assert r["ErrorDescription"] == ["FIELD_TYPE_ERROR", "value"], r
    r = s.VM.set_name_label(sess, vm, ["not", "a", "string"])
    assert r["ErrorDescription"][0] == "FIELD_TYPE_ERROR", r
    r = s.VM.get_all_records_where(sess, 'field "name__label"=')
    assert r["ErrorDescription"][0] == "INVALID_VALUE", r


def test_oversized_body_is_refused():
    # announced too large: refused from the headers, before any body
    head = (b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (17 << 20))
    out = raw(head + b"x" * 1000)
    assert out.startswith(b"HTTP/1.1 413"), out[:80]
    # too large without announcing it (chunked): refused once past the limit
    with socket.create_connection(("127.0.0.1", PORT), timeout=10) as c:
        c.sendall(b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"100000\r\n" + b"x" * 0x100000 + b"\r\n"
        answer = b""
        try:
            for _ in range(20):
                c.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            answer = c.recv(100)
        except ConnectionResetError:
            pass
        assert answer == b"" or answer.startswith(b"HTTP/1.1 413"), answer
    still_serving()


def test_deep_nesting_and_bad_encodings():
    deep = b"[" * 200000 + b"]" * 200000
    out = post("/jsonrpc", b'{"jsonrpc":"2.0","id":1,"method":"x","params":' + deep + b"}")
    assert out.startswith(b"HTTP/1.1 500"), out[:80]
    out = post("/jsonrpc", b'{"jsonrpc":"2.0","id":1,"method":"VM.get_all","params":["\xff\xfe"]}')
    assert out.startswith(b"HTTP/1.1 500"), out[:80]
    xml = (b"<?xml version='1.0'?><methodCall><methodName>x</methodName><params>"
           + b"<param><value><array><data>" * 5000 + b"</data></array></value></param>" * 5000
           + b"</params></methodCall>")
    out = post("/", xml, "text/xml")
    assert out.startswith(b"HTTP/1.1 500"), out[:80]
    still_serving()


def test_xml_entities_are_not_expanded():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
            b'<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
            b"<methodCall><methodName>&d;</methodName></methodCall>")
    out = post("/", bomb, "text/xml")
    assert out.startswith(b"HTTP/1.1 500"), out[:80]
    ext = (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b"<methodCall><methodName>session.login_with_password</methodName><params>"
           b"<param><value>&x;</value></param><param><value>p</value></param></params></methodCall>")
    out = post("/", ext, "text/xml")
    assert b"root:" not in out
    assert out.startswith(b"HTTP/1.1 500"), out[:80]
    still_serving()


def test_slow_clients_are_dropped_and_others_served():
    held = []
    for _ in range(20):
        c = socket.create_connection(("127.0.0.1", PORT), timeout=10)
        c.sendall(b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Le")  # never finishes
        held.append(c)
    still_serving()  # the stalled connections do not block anyone
    time.sleep(3)    # --http-idle-timeout 2
    for c in held:
        c.settimeout(5)
        try:
            assert c.recv(1) == b"", "a stalled connection was not closed"
        except ConnectionResetError:
            pass
        c.close()


def test_cors_preflight():
    out = raw(b"OPTIONS /jsonrpc HTTP/1.1\r\nHost: x\r\nOrigin: http://example\r\n"
              b"Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200"), out[:80]
    assert b"Access-Control-Allow-Origin: *" in out
    out = post("/jsonrpc", b'{"jsonrpc":"2.0","id":1,"method":"system.listMethods","params":[]}')
    assert b"Access-Control-Allow-Origin: *" in out
    assert b"Content-Type: application/json\r\n" in out


def test_memory_stays_bounded_under_bad_requests():
    def rss():
        with open("/proc/%d/status" % D.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    before = rss()
    threads = [threading.Thread(target=post, args=("/jsonrpc", b"y" * (8 << 20))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in range(200):
        post("/jsonrpc", b'{"broken":')
    after = rss()
    assert after - before < 200 * 1024, "RSS grew from %d to %d kB" % (before, after)
    still_serving()


def test_vdi_create_makes_its_image():
    s = proxy()
    sess = login(s)
    sr = ok(s.pool.get_default_SR(sess, ok(s.pool.get_all(sess))[0]))
    args = {"SR": sr, "virtual_size": str(3 << 30), "type": "user", "sharable": False,
            "read_only": False, "other_config": {}, "name_label": "data"}
    vdi = ok(s.VDI.create(sess, args))
    rec = ok(s.VDI.get_record(sess, vdi))
    assert rec["virtual_size"] == str(3 << 30) and rec["SR"] == sr, rec
    path = os.path.join(D.sr_dir(), rec["location"] + ".qcow2")
    info = json.loads(subprocess.check_output(["qemu-img", "info", "--output=json", path]))
    assert info["virtual-size"] == 3 << 30 and info["format"] == "qcow2", info
    assert ok(s.SR.get_VDIs(sess, sr)).count(vdi) == 1
    bad = dict(args, virtual_size="-1")
    assert s.VDI.create(sess, bad)["ErrorDescription"][:2] == ["INVALID_VALUE", "virtual_size"]
    bad = dict(args, SR="OpaqueRef:nope")
    assert s.VDI.create(sess, bad)["ErrorDescription"][0] == "HANDLE_INVALID"
    ok(s.VDI.destroy(sess, vdi))
    assert not os.path.exists(path)
