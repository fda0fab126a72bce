"""xe against a remote host: -s HOST -p PORT -u USER -pw PASS over the
daemon's HTTPS listener (self-signed certificate made on first start),
and the same API over XML-RPC from Python's standard xmlrpc.client."""

import os
import socket
import ssl
import xmlrpc.client

import xenia

D = None
PORT = None


def setup_module():
    global D, PORT
    PORT = xenia.free_port()
    D = xenia.Daemon(name="remote", extra_args=["--listen", "127.0.0.1:%d" % PORT]).start()


def teardown_module():
    D.cleanup()


def password():
    with open(os.path.join(D.data_dir, "root-password")) as f:
        return f.read().strip()


def test_remote_xe_over_https():
    out = D.xe("-s", "127.0.0.1", "-p", str(PORT), "-u", "root", "-pw", password(),
               "host-list", "--minimal")
    assert xenia.UUID_RE.match(out.strip()), out
    assert out.strip() == D.xe("host-list", "--minimal").strip()
    pem = open(os.path.join(D.data_dir, "xapi-ssl.pem")).read()
    assert "BEGIN CERTIFICATE" in pem and "PRIVATE KEY" in pem
    assert oct(os.stat(os.path.join(D.data_dir, "xapi-ssl.pem")).st_mode & 0o777) == "0o600"


def test_remote_wrong_password_is_refused():
    r = D.xe("-s", "127.0.0.1", "-p", str(PORT), "-u", "root", "-pw", "not-it",
             "host-list", ok=False)
    assert r.rc != 0
    assert "Authentication failed" in r.stderr or "SESSION_AUTHENTICATION_FAILED" in r.stderr, r.stderr


def test_xmlrpc_client():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = xmlrpc.client.ServerProxy("https://127.0.0.1:%d" % PORT, context=ctx)
    r = s.session.login_with_password("root", password())
    assert r["Status"] == "Success", r
    sess = r["Value"]
    vms = s.VM.get_all_records(sess)["Value"]
    tmpl = [v for v in vms.values() if v["name_label"] == "Tiny Linux"][0]
    # xapi's encoding: ints as untyped text, booleans as booleans
    assert tmpl["memory_static_max"] == str(128 << 20), tmpl["memory_static_max"]
    assert tmpl["is_a_template"] is True
    bad = s.VM.get_record(sess, "OpaqueRef:nope")
    assert bad == {"Status": "Failure", "ErrorDescription": ["HANDLE_INVALID", "VM", "OpaqueRef:nope"]}
    assert "VM.start" in s.system.listMethods()  # bare list, no Status wrapper
    s.session.logout(sess)
    assert s.VM.get_all(sess)["ErrorDescription"][0] == "SESSION_INVALID"
