"""Bad input, through xe and straight at the JSON-RPC API: each is refused
with a non-zero exit (xe) or the XenAPI error xapi sends, with xapi's
parameters, and changes nothing (vm-param-list compared before/after)."""

import json
import os
import secrets

import xenia

D = None
VM = None
NAME = "victim"


def setup_module():
    global D, VM
    D = xenia.Daemon(name="bad").start()
    VM = D.install(NAME)


def teardown_module():
    D.cleanup()


class Unchanged:
    """The VM's record, every VM, VDI and SR file are the same after."""

    def snapshot(self):
        return (D.xe("vm-param-list", "uuid=" + VM),
                D.xe("vm-list", "params=uuid,name-label,power-state"),
                D.xe("vdi-list", "params=uuid,name-label"),
                sorted(os.listdir(D.sr_dir())))

    def __enter__(self):
        self.before = self.snapshot()
        return self

    def __exit__(self, exc_type, *rest):
        if exc_type is None:
            after = self.snapshot()
            for b, a in zip(self.before, after):
                assert b == a, "changed by bad input:\n--- before\n%s\n--- after\n%s" % (b, a)


def fails(*args):
    """xe must exit non-zero and say something on stderr."""
    out = D.xe(*args, ok=False)
    assert out.stderr.strip(), "xe %s failed silently" % " ".join(args)
    return out


def fails_with(code, *args):
    out = fails(*args)
    assert out.error_code() == code, "xe %s: want %s, got stderr %r" % (" ".join(args), code,
                                                                         out.stderr)
    return out


def test_unknown_vm():
    with Unchanged():
        out = fails("vm-start", "vm=no-such-vm")
        assert "No matching VMs" in out.stderr, out.stderr
        fails("vm-shutdown", "vm=no-such-vm", "--force")
        fails("console", "vm=no-such-vm")
        # a well-formed uuid that names nothing
        ghost = "12345678-1234-1234-1234-123456789abc"
        out = fails_with("UUID_INVALID", "vm-param-get", "uuid=" + ghost, "param-name=name-label")
        assert out.error_params() == "VM, " + ghost, out.stderr


def test_malformed_uuid():
    with Unchanged():
        out = fails_with("UUID_INVALID", "vm-param-get", "uuid=not-a-uuid", "param-name=name-label")
        assert out.error_params() == "VM, not-a-uuid", out.stderr
        fails_with("UUID_INVALID", "vm-param-set", "uuid=not-a-uuid", "name-label=x")


def test_unknown_parameter():
    with Unchanged():
        out = fails("vm-param-get", "uuid=" + VM, "param-name=no-such-param")
        assert "no-such-param" in out.stderr, out.stderr
        out = fails("vm-param-set", "uuid=" + VM, "no-such-param=1")
        assert "no-such-param" in out.stderr, out.stderr
        # a read-only field is not settable either
        fails("vm-param-set", "uuid=" + VM, "power-state=running")
        # nor is a good field set along with a bad one
        fails("vm-param-set", "uuid=" + VM, "name-description=partial", "no-such-param=1")
        out = fails("vm-install", "new-name-label=x", "template=" + xenia.TEMPLATE, "bogus=1")
        assert "bogus" in out.stderr, out.stderr


def test_bad_memory_values():
    with Unchanged():
        fails("vm-param-set", "uuid=" + VM, "memory-static-max=-5")
        fails("vm-param-set", "uuid=" + VM, "memory-static-max=lots")
        fails("vm-param-set", "uuid=" + VM, "VCPUs-max=two")
        # accepted as a size, refused by the server: its error code shows
        out = fails_with("MEMORY_CONSTRAINT_VIOLATION", "vm-param-set", "uuid=" + VM,
                         "memory-static-max=1MiB")
        assert out.error_params(), out.stderr
        # the same through the API
        ref = D.api("VM.get_by_uuid", VM)
        try:
            D.api("VM.set_memory_static_max", ref, -5)
            raise AssertionError("VM.set_memory_static_max(-5) succeeded")
        except xenia.ApiError as e:
            assert e.code == "INVALID_VALUE" and e.params == ["memory_static_max", "-5"], e
        try:
            D.api("VM.set_VCPUs_at_startup", ref, 0)
            raise AssertionError("VM.set_VCPUs_at_startup(0) succeeded")
        except xenia.ApiError as e:
            assert e.code == "INVALID_VALUE", e


def test_control_character_in_name():
    with Unchanged():
        out = fails_with("INVALID_VALUE", "vm-param-set", "uuid=" + VM, "name-label=bad\x01name")
        assert out.error_params().startswith("name_label, "), out.stderr
        fails_with("INVALID_VALUE", "vm-param-set", "uuid=" + VM, "name-label=bad\x7fname")
        fails_with("INVALID_VALUE", "vm-install", "new-name-label=evil\x01vm",
                   "template=" + xenia.TEMPLATE)
    assert D.xe("vm-list", "name-label=evil\x01vm", "--minimal").strip() == ""
    # a newline is fine in a description, not in a label
    D.xe("vm-param-set", "uuid=" + VM, "name-description=two\nlines")
    assert D.api("VM.get_name_description", D.api("VM.get_by_uuid", VM)) == "two\nlines"
    D.xe("vm-param-set", "uuid=" + VM, "name-description=")


def test_missing_template():
    with Unchanged():
        out = fails("vm-install", "new-name-label=orphan", "template=no-such-template")
        assert "no-such-template" in out.stderr, out.stderr
        fails("vm-install", "new-name-label=orphan")  # no template at all
        fails("vm-install", "template=" + xenia.TEMPLATE)  # no name
    assert D.xe("vm-list", "name-label=orphan", "--minimal").strip() == ""
    assert D.xe("template-list", "name-label=orphan", "--minimal").strip() == ""


# ---- JSON-RPC straight at the socket ---------------------------------------

def error_of(reply):
    """(code, params) of a JSON-RPC v2 error reply."""
    e = reply.get("error")
    assert e and "result" not in reply, "expected an error, got %s" % reply
    assert e.get("code") == 1, reply  # xapi's v2 errors always carry code 1
    return e.get("message"), e.get("data")


def test_api_parameter_count():
    with Unchanged():
        s = D.login()
        ref = D.api("VM.get_by_uuid", VM)
        assert error_of(D.call("VM.get_all", [s, "extra"])) == \
            ("MESSAGE_PARAMETER_COUNT_MISMATCH", ["VM.get_all", "0", "1"])
        assert error_of(D.call("VM.start", [s, ref])) == \
            ("MESSAGE_PARAMETER_COUNT_MISMATCH", ["VM.start", "3", "1"])
        assert error_of(D.call("VM.set_name_label", [s, ref])) == \
            ("MESSAGE_PARAMETER_COUNT_MISMATCH", ["VM.set_name_label", "2", "1"])
        # login takes 2 to 4
        assert error_of(D.call("session.login_with_password", ["root"])) == \
            ("MESSAGE_PARAMETER_COUNT_MISMATCH", ["session.login_with_password", "2", "1"])


def test_api_bad_ref():
    with Unchanged():
        s = D.login()
        bad = "OpaqueRef:" + secrets.token_hex(8)
        assert error_of(D.call("VM.get_record", [s, bad])) == ("HANDLE_INVALID", ["VM", bad])
        assert error_of(D.call("VM.set_name_label", [s, bad, "x"])) == ("HANDLE_INVALID", ["VM", bad])
        assert error_of(D.call("VM.start", [s, bad, False, False])) == ("HANDLE_INVALID", ["VM", bad])
        # a real ref of another class is not a VM
        host = D.api("host.get_all")[0]
        assert error_of(D.call("VM.get_record", [s, host])) == ("HANDLE_INVALID", ["VM", host])


def test_api_unknown_method():
    s = D.login()
    assert error_of(D.call("VM.no_such_method", [s])) == \
        ("MESSAGE_METHOD_UNKNOWN", ["VM.no_such_method"])
    assert error_of(D.call("nosuchclass.get_all", [s])) == \
        ("MESSAGE_METHOD_UNKNOWN", ["nosuchclass.get_all"])


def test_api_bad_session():
    with Unchanged():
        bad = "OpaqueRef:" + secrets.token_hex(8)
        assert error_of(D.call("VM.get_all", [bad])) == ("SESSION_INVALID", [bad])
        ref = D.api("VM.get_by_uuid", VM)
        assert error_of(D.call("VM.set_name_label", [bad, ref, "hijacked"])) == \
            ("SESSION_INVALID", [bad])
        # a session that logged out is no longer valid
        s = D.login()
        assert D.call("session.logout", [s]).get("error") is None
        assert error_of(D.call("VM.get_all", [s])) == ("SESSION_INVALID", [s])
        D.session = None
        # v1 errors are a flat list
        reply = D.call("VM.get_all", [bad], version=None)
        assert reply.get("error") == ["SESSION_INVALID", bad] and reply.get("result") is None, reply


def test_api_malformed_requests():
    with Unchanged():
        for body in ("{not json", "", "[]", '"just a string"',
                     json.dumps({"method": "VM.get_all", "params": [], "id": None}),
                     json.dumps({"params": [], "id": 1})):
            status, reply = D.rpc(body)
            assert status == 500, "%r: HTTP %d %r" % (body, status, reply[:200])
        # the daemon is still fine
        assert D.api("VM.get_by_uuid", VM).startswith("OpaqueRef:")
