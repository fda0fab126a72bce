"""Local users and roles: user-add/list/remove/password-change, and the
role of a session limiting what it may call (read-only reads, a
vm-operator starts and stops but cannot create; the API refuses with
RBAC_PERMISSION_DENIED whatever the client)."""

import os
import time

import xenia

D = None
PORT = None


def setup_module():
    global D, PORT
    PORT = xenia.free_port()
    D = xenia.Daemon(name="rbac", extra_args=["--listen", "127.0.0.1:%d" % PORT]).start()


def teardown_module():
    D.cleanup()


def as_user(user, pw, *args, ok=True):
    return D.xe("-s", "127.0.0.1", "-p", str(PORT), "-u", user, "-pw", pw, *args, ok=ok)


def test_users_and_roles():
    alice = D.xe("user-add", "user-name=alice", "password=wonder", "role=read-only").strip()
    assert xenia.UUID_RE.match(alice), alice
    D.xe("user-add", "user-name=bob", "password=builder", "role=vm-operator")
    listing = D.xe("user-list")
    assert "alice" in listing and "read-only" in listing and "vm-operator" in listing, listing
    # bad input: duplicate, unknown role, bad name, empty password
    assert D.xe("user-add", "user-name=alice", "password=x", ok=False).error_code() == "SUBJECT_ALREADY_EXISTS"
    assert D.xe("user-add", "user-name=carl", "password=x", "role=god", ok=False).error_code() == "INVALID_VALUE"
    assert D.xe("user-add", "user-name=bad name", "password=x", ok=False).error_code() == "INVALID_VALUE"
    assert D.xe("user-list", "--minimal").split() == ["alice", "bob"]

    vm = D.install("rbac-vm")
    # read-only: reads work, every write is refused
    assert vm in as_user("alice", "wonder", "vm-list", "--minimal")
    r = as_user("alice", "wonder", "vm-start", "uuid=" + vm, ok=False)
    assert r.error_code() == "RBAC_PERMISSION_DENIED", r.stderr
    r = as_user("alice", "wonder", "vm-param-set", "uuid=" + vm, "name-description=x", ok=False)
    assert r.error_code() == "RBAC_PERMISSION_DENIED", r.stderr
    r = as_user("alice", "wonder", "user-add", "user-name=eve", "password=x", ok=False)
    assert r.error_code() == "RBAC_PERMISSION_DENIED", r.stderr
    assert D.power_state(vm) == "halted"
    # vm-operator: start and stop, but no create
    as_user("bob", "builder", "vm-start", "uuid=" + vm)
    assert D.power_state(vm) == "running"
    as_user("bob", "builder", "vm-shutdown", "uuid=" + vm, "--force")
    assert D.power_state(vm) == "halted"
    r = as_user("bob", "builder", "vm-install", "template=Tiny Linux", "new-name-label=no", ok=False)
    assert r.error_code() == "RBAC_PERMISSION_DENIED", r.stderr

    # the session tells a client what its role allows (xapi's names)
    pw_call = D.call("session.login_with_password", ["bob", "builder"])
    s_bob = pw_call["result"]
    perms = D.call("session.get_rbac_permissions", [s_bob, s_bob])["result"]
    assert "vm.start" in perms and "vm.clone" not in perms, len(perms)
    root_perms = D.api("session.get_rbac_permissions", D.login())
    assert "vm.clone" in root_perms and len(root_perms) > len(perms)
    # own password change needs the old one; an admin can reset it
    r = as_user("alice", "wonder", "user-password-change", "old=wrong", "new=x", ok=False)
    assert r.rc != 0
    as_user("alice", "wonder", "user-password-change", "old=wonder", "new=land")
    assert "Authentication failed" in as_user("alice", "wonder", "host-list", ok=False).stderr
    as_user("alice", "land", "host-list")
    D.xe("user-password-change", "user-name=alice", "new=reset")
    as_user("alice", "reset", "host-list")
    # removal ends access
    D.xe("user-remove", "user-name=alice")
    assert "Authentication failed" in as_user("alice", "reset", "host-list", ok=False).stderr
    assert D.xe("user-list", "--minimal").split() == ["bob"]
    # accounts survive a restart
    D.restart()
    as_user("bob", "builder", "vm-list")
    assert "password_hash" not in D.xe("vm-list", "params=all")


def test_idle_sessions_expire():
    d = xenia.Daemon(name="expiry", extra_args=["--session-timeout", "2"]).start()
    try:
        s = d.login()
        assert d.call("pool.get_all", [s]).get("result"), "a fresh session works"
        # any call would count as use: stay idle past the timeout plus a
        # sweep (every timeout/2), then look once
        time.sleep(4)
        r = d.call("pool.get_all", [s])
        assert (r.get("error") or {}).get("message") == "SESSION_INVALID", r
        # a session in use does not expire
        s2 = d.login()
        for _ in range(8):
            assert d.call("pool.get_all", [s2]).get("result")
            time.sleep(0.5)
    finally:
        d.cleanup()
