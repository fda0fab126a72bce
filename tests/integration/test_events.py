"""event.from as clients use it: tokens carry a client across
reconnects without missing or repeating a change; del events; a blocked
call wakes within milliseconds of the commit; bad subscriptions and
tokens are refused; task records of Async calls."""

import json
import threading
import time

import xenia

D = None


def setup_module():
    global D
    D = xenia.Daemon(name="events").start()


def teardown_module():
    D.cleanup()


def event_from(classes, token, timeout):
    return D.api("event.from", classes, token, timeout)


def test_tokens_across_reconnects_never_miss_or_repeat():
    pool = D.api("pool.get_all")[0]
    token = event_from(["pool"], "", 0.0)["token"]
    seen = []
    for i in range(30):
        D.api("pool.set_name_description", pool, "v%d" % i)
        # every call is a new HTTP connection (D.api reconnects)
        batch = event_from(["pool"], token, 5.0)
        assert batch["token"] > token, (batch["token"], token)
        token = batch["token"]
        descs = [e["snapshot"]["name_description"] for e in batch["events"]]
        assert descs == ["v%d" % i], descs  # exactly this change, once
        seen += descs
    assert seen == ["v%d" % i for i in range(30)]
    # nothing new: an empty batch after the timeout; the token is the
    # database's generation (as xapi's), which background work on other
    # classes (the SR's sizes) may move on, never back
    t0 = time.monotonic()
    batch = event_from(["pool"], token, 0.5)
    assert batch["events"] == [] and batch["token"] >= token, (batch, token)
    assert 0.4 < time.monotonic() - t0 < 5


def test_add_del_and_wakeup_latency():
    token = event_from(["vm"], "", 0.0)["token"]
    got = {}

    def wait():
        # batches until the new VM's "add" (the clone first marks the
        # template's current_operations: a "mod" may come alone before)
        t, deadline = token, time.monotonic() + 10
        got["ops"] = set()
        while time.monotonic() < deadline and not any(o == "add" for o, _ in got["ops"]):
            b = event_from(["vm"], t, 10.0)
            got["ops"] |= {(e["operation"], e["snapshot"]["uuid"]) for e in b["events"]
                           if "snapshot" in e}
            t = b["token"]
        got["t"] = time.monotonic()
        got["token"] = t
    th = threading.Thread(target=wait)
    th.start()
    time.sleep(0.3)
    vm = D.install("ev")
    t_done = time.monotonic()
    th.join(15)
    assert "t" in got
    assert ("add", vm) in got["ops"], got["ops"]
    assert got["t"] - t_done < 1.0
    token = got["token"]
    D.xe("vm-uninstall", "uuid=" + vm, "--force")
    batch = event_from(["vm"], token, 5.0)
    dels = [e for e in batch["events"] if e["operation"] == "del"]
    assert dels and all("snapshot" not in e for e in dels), batch["events"]
    assert int(batch["valid_ref_counts"]["vm"]) == len(D.api("VM.get_all"))


def test_bad_subscription_and_token():
    r = D.call("event.from", [D.login(), ["nosuchclass"], "", 0.0])
    assert r["error"]["message"] == "EVENT_SUBSCRIPTION_PARSE_FAILURE", r
    r = D.call("event.from", [D.login(), ["vm"], "garbage", 0.0])
    assert r["error"]["message"] == "EVENT_FROM_TOKEN_PARSE_FAILURE", r


def test_async_task_records():
    tmpl = [r for r, v in D.api("VM.get_all_records").items() if v["name_label"] == "Tiny Linux"][0]
    task = D.api("Async.VM.clone", tmpl, "async-ev")
    xenia.wait_for(lambda: D.api("task.get_status", task) != "pending", 30, 0.05, what="task")
    rec = D.api("task.get_record", task)
    assert rec["status"] == "success" and rec["progress"] == 1.0, rec
    assert rec["result"].startswith("<value>OpaqueRef:"), rec["result"]
    assert task in D.api("task.get_all_records")
    bad = D.api("Async.VM.start", "OpaqueRef:nope", False, False)
    xenia.wait_for(lambda: D.api("task.get_status", bad) != "pending", 10, 0.05, what="task")
    assert D.api("task.get_error_info", bad) == ["HANDLE_INVALID", "VM", "OpaqueRef:nope"]
    r = D.call("task.cancel", [D.login(), task])
    assert r["error"]["message"] == "OPERATION_NOT_ALLOWED", r
