#!/usr/bin/env python3
"""Boot the Tiny Linux image under QEMU (TCG) and check it end to end.

usage: smoke-test.py OUTDIR [--mode direct|bios] [--runs N] [--reboot]
                     [--log FILE]

Each run boots a fresh qcow2 overlay of OUTDIR/disk.qcow2, either with
-kernel/-initrd/-append ("direct") or from the disk via SeaBIOS + syslinux
("bios"), and measures the time from starting QEMU to the shell prompt on
the serial socket.  It then runs a command over the serial line, optionally
reboots the guest from its shell and waits for the prompt again, and finally
sends QMP system_powerdown and waits for QEMU to exit.

Prints one line per run and the median boot time; exits non-zero on failure.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PROMPT = b"root@tiny:/# "


class Serial:
    """Line-agnostic reader over QEMU's serial chardev socket."""

    def __init__(self, path, deadline, log=None):
        self.sock = connect(path, deadline)
        self.buf = b""
        self.log = log

    def expect(self, needle, timeout):
        """Wait until `needle` appears after what was consumed so far."""
        end = time.monotonic() + timeout
        while needle not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {needle!r} within {timeout}s; "
                                   f"last output: {self.buf[-400:]!r}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            if not data:
                raise EOFError(f"serial closed; last output: {self.buf[-400:]!r}")
            self.buf += data
            if self.log:
                self.log.write(data)
                self.log.flush()
        self.buf = self.buf[self.buf.index(needle) + len(needle):]

    def send(self, line):
        self.sock.sendall(line.encode() + b"\n")


def connect(path, deadline):
    """Connect to a unix socket QEMU is about to create."""
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def qmp(path, deadline):
    """Open a QMP session and return a function running one command."""
    s = connect(path, deadline)
    f = s.makefile("rwb")
    json.loads(f.readline())  # greeting

    def run(cmd):
        f.write(json.dumps({"execute": cmd}).encode() + b"\n")
        f.flush()
        while True:  # skip asynchronous events until our reply
            msg = json.loads(f.readline())
            if "return" in msg or "error" in msg:
                return msg

    run("qmp_capabilities")
    return run


def boot_once(outdir, mode, tmp, do_reboot, log):
    ser_path, qmp_path = f"{tmp}/ser.sock", f"{tmp}/qmp.sock"
    overlay = f"{tmp}/overlay.qcow2"
    for p in (ser_path, qmp_path, overlay):
        if os.path.exists(p):
            os.unlink(p)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                    "-b", os.path.abspath(f"{outdir}/disk.qcow2"), overlay],
                   check=True)
    with open(f"{outdir}/manifest.json") as f:
        manifest = json.load(f)

    cmd = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg,thread=multi",
           "-m", "128", "-smp", "1", "-nodefaults", "-no-user-config",
           "-display", "none",
           "-chardev", f"socket,id=ser0,path={ser_path},server=on,wait=off",
           "-serial", "chardev:ser0",
           "-chardev", f"socket,id=qmp,path={qmp_path},server=on,wait=off",
           "-mon", "chardev=qmp,mode=control",
           "-blockdev", json.dumps({"driver": "file", "filename": overlay,
                                    "node-name": "f0"}),
           "-blockdev", json.dumps({"driver": "qcow2", "file": "f0",
                                    "node-name": "d0"}),
           "-device", "virtio-blk-pci,drive=d0"]
    if mode == "direct":
        cmd += ["-kernel", f"{outdir}/{manifest['kernel']}",
                "-initrd", f"{outdir}/{manifest['ramdisk']}",
                "-append", manifest["args"]]
    else:
        cmd += ["-boot", "order=c"]

    result = {}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    try:
        ser = Serial(ser_path, t0 + 10, log)
        ser.expect(PROMPT, 60)
        result["boot"] = time.monotonic() - t0

        ser.send("echo hello-$((40+2))")
        ser.expect(b"\nhello-42", 10)
        ser.expect(PROMPT, 10)
        result["echo"] = "ok"

        if do_reboot:
            t1 = time.monotonic()
            ser.send("reboot")
            # The shell prints a new prompt at once (reboot only signals
            # init); wait for the kernel's last words, then the new prompt.
            ser.expect(b"reboot: Restarting system", 30)
            ser.expect(PROMPT, 60)
            result["reboot"] = time.monotonic() - t1
            ser.send("echo up-$((1+1))")
            ser.expect(b"\nup-2", 10)

        # Clean ACPI shutdown: the guest must power itself off.  Keep
        # draining the serial line meanwhile (into the log, if any).
        run = qmp(qmp_path, time.monotonic() + 5)
        t2 = time.monotonic()
        reply = run("system_powerdown")
        assert "return" in reply, reply
        try:
            ser.expect(b"\0never\0", 30)
        except EOFError:
            pass  # QEMU exited and closed the serial socket
        rc = proc.wait(timeout=5)
        result["powerdown"] = time.monotonic() - t2
        assert rc == 0, f"qemu exited {rc}"
        return result
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--mode", choices=("direct", "bios"), default="direct")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--reboot", action="store_true",
                    help="also reboot from the guest shell")
    ap.add_argument("--log", help="append all serial output to this file")
    args = ap.parse_args()

    boots = []
    log = open(args.log, "ab") if args.log else None
    with tempfile.TemporaryDirectory(prefix="tiny-smoke-") as tmp:
        for i in range(args.runs):
            r = boot_once(args.outdir, args.mode, tmp, args.reboot, log)
            boots.append(r["boot"])
            extra = f" reboot {r['reboot']:.2f}s" if "reboot" in r else ""
            print(f"{args.mode} run {i + 1}: prompt {r['boot']:.2f}s, "
                  f"echo {r['echo']},{extra} powerdown {r['powerdown']:.2f}s",
                  flush=True)
    print(f"{args.mode}: median time to prompt {statistics.median(boots):.2f}s "
          f"over {len(boots)} run(s)")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one readable line instead of a traceback
        print(f"smoke-test: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
