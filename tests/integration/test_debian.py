"""The "Debian 12" template (issue 8): installing it runs debootstrap from
the Debian mirror into the new VM's disk (VM.provision, a child process,
the progress on the task), and the VM boots that disk by BIOS into
systemd and a login prompt on the serial console, where root logs in
with the password recorded in other-config:install-root-password.

Slow (the download and debootstrap take minutes, booting Debian under
TCG a minute or more) and it needs the Debian mirror: `make test-slow`."""

import re
import time

import xenia

D = None
TEMPLATE = "Debian 12"


def setup_module():
    global D
    D = xenia.Daemon(name="debian").start()


def teardown_module():
    D.cleanup()


def test_template_defaults():
    t = D.xe("template-list", "name-label=" + TEMPLATE, "--minimal").strip()
    assert xenia.UUID_RE.match(t), t
    assert D.vm_param(t, "HVM-boot-policy") == "BIOS order"
    assert D.vm_param(t, "other-config", "xenia-install") == "debootstrap"
    assert D.vm_param(t, "other-config", "install-distribution") == "bookworm"


@xenia.slow
@xenia.time_limit(3000)
def test_install_and_log_in():
    # what vm-install does, with the provisioning as an Async call so
    # that its task's progress can be watched
    tmpl = [r for r, v in D.api("VM.get_all_records").items()
            if v["name_label"] == TEMPLATE and v["is_a_template"]][0]
    vm_ref = D.api("VM.clone", tmpl, "deb1")
    t0 = time.monotonic()
    task = D.api("Async.VM.provision", vm_ref)
    seen = set()

    def done():
        seen.add(round(float(D.api("task.get_progress", task)), 2))
        return D.api("task.get_status", task) != "pending"
    xenia.wait_for(done, 2400, 2, what="the Debian install")
    assert D.api("task.get_status", task) == "success", D.api("task.get_error_info", task)
    assert any(0 < p < 1 for p in seen), seen     # progress was reported on the way
    D.api("VM.set_is_a_template", vm_ref, False)
    vm = D.api("VM.get_uuid", vm_ref)
    password = D.vm_param(vm, "other-config", "install-root-password")
    assert len(password) >= 12, password

    t1 = time.monotonic()
    D.xe("vm-start", "uuid=" + vm)
    with D.console(vm) as c:
        c.expect(rb"deb1 login:", timeout=900)
        t2 = time.monotonic()
        print("debian: install %.0f s, start to login prompt %.0f s" % (t1 - t0, t2 - t1))
        c.send("root\n")
        c.expect(rb"Password:", timeout=60)
        m = c.mark()
        c.send(password + "\n")
        c.expect(rb"root@deb1:~# ", timeout=120, start=m)
        assert c.run("cat /proc/1/comm", timeout=60) == "systemd"
        state = c.run("systemctl is-system-running --wait", timeout=300)
        assert state in ("running", "degraded"), state
        assert re.match(r"^12\.\d+$", c.run("cat /etc/debian_version", timeout=60))
        assert c.run("dpkg-query -W -f='${Status}' qemu-guest-agent", timeout=60) \
            == "install ok installed"
        assert c.run("findmnt -n -o SOURCE /", timeout=60) == "/dev/vda2"
    D.xe("vm-shutdown", "uuid=" + vm, "--force")
