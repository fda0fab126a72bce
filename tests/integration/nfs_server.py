"""nfs_server.py: a real NFS server for the tests, nfs-ganesha in
userspace on 127.0.0.1 (the machine has no kernel NFS server or client).

    srv = NfsServer().start()     # returns once the export answers
    srv.export                    # the exported directory (a temp dir)
    srv.url("a/b.qcow2")          # nfs://127.0.0.1<export>/a/b.qcow2
    srv.stop()                    # SIGTERM, SIGKILL if it hangs
    srv.start()                   # again, same export (a server reboot)
    srv.cleanup()                 # stop, remove the temp dir

NFSv3 needs rpcbind (portmapper, and MOUNT is found through it): it is
started if nothing listens on port 111, and stopped by cleanup() only if
this class started it. Ganesha serves NFSv3 and v4 on port 2049 with
the export's Path also as its v4 pseudo path, root not squashed,
and no grace period (Graceless), so it answers within about a second.
Only one ganesha can serve the machine's port 2049 and rpcbind
registrations: start() fails clearly if something else holds them.

Every wait is bounded. Ganesha's log (CRIT lines about D-Bus and krb5
are expected: there is no system bus and no keytab) is kept in the temp
dir; log_tail() shows it in failure reports.

Do not change the exported directory's files behind the server's back
(creating or removing them locally): ganesha caches metadata, and a file
removed locally may still look present over NFS for a while. Reading
them locally is fine."""

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HOST = "127.0.0.1"

CONF = """\
NFS_CORE_PARAM {{ Protocols = 3, 4; Bind_addr = {host}; Enable_NLM = false; Enable_RQUOTA = false; }}
NFSv4 {{ Graceless = true; RecoveryBackend = fs; RecoveryRoot = {recov}; }}
EXPORT {{ Export_Id = 1; Path = {export}; Pseudo = {export}; Access_Type = RW;
         Squash = No_Root_Squash; SecType = sys; Protocols = 3, 4; Transports = TCP;
         FSAL {{ Name = VFS; }} }}
LOG {{ Default_Log_Level = EVENT; }}
"""


def _listening(port, host=HOST, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(0.05)


def _which(name):
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name)


class NfsServer:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="xenia-it-nfs-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.export = os.path.join(self.dir, "export")
        os.mkdir(self.export, 0o755)
        os.mkdir(os.path.join(self.dir, "recov"), 0o700)
        self.conf = os.path.join(self.dir, "ganesha.conf")
        self.log = os.path.join(self.dir, "ganesha.log")
        with open(self.conf, "w") as f:
            f.write(CONF.format(host=HOST, recov=os.path.join(self.dir, "recov"),
                                export=self.export))
        self.host = HOST
        self.proc = None
        self.rpcbind = None

    # -- rpcbind ---------------------------------------------------------
    def _ensure_rpcbind(self):
        if _listening(111):
            return
        exe = _which("rpcbind")
        assert exe, "rpcbind is not installed (scripts/install-deps.sh --test)"
        # -f: foreground, so we own the process; -w: warm start
        self.rpcbind = subprocess.Popen([exe, "-f", "-w"], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: _listening(111) or self.rpcbind.poll() is not None, 10, "rpcbind")
        assert self.rpcbind.poll() is None, "rpcbind exited with %s" % self.rpcbind.returncode

    # -- ganesha ---------------------------------------------------------
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=20):
        assert not self.running(), "ganesha already running"
        exe = _which("ganesha.nfsd")
        assert exe, "nfs-ganesha is not installed (scripts/install-deps.sh --test)"
        assert not _listening(2049), ("something already listens on %s:2049 (another NFS "
                                      "server?); the tests need that port" % HOST)
        self._ensure_rpcbind()
        with open(self.log, "ab") as f:
            f.write(b"==== start\n")
        self.proc = subprocess.Popen(
            [exe, "-F", "-L", self.log, "-f", self.conf, "-p", os.path.join(self.dir, "pid")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        try:
            _wait(lambda: self.proc.poll() is not None or self._answers(), timeout,
                  "ganesha to serve %s" % self.export)
        except AssertionError as e:
            self.stop()
            raise AssertionError("%s\n%s" % (e, self.log_tail()))
        if self.proc.poll() is not None:
            raise AssertionError("ganesha.nfsd exited with %s:\n%s"
                                 % (self.proc.returncode, self.log_tail()))
        return self

    def _answers(self):
        """The export can be listed over NFSv3 (rpcbind, MOUNT and NFS)."""
        try:
            r = subprocess.run(["nfs-ls", self.url("")], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5)
            return r.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def stop(self, timeout=10):
        """Stop ganesha (SIGTERM; SIGKILL after timeout seconds)."""
        if not self.running():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def cleanup(self):
        self.stop()
        if self.rpcbind and self.rpcbind.poll() is None:
            self.rpcbind.terminate()
            try:
                self.rpcbind.wait(10)
            except subprocess.TimeoutExpired:
                self.rpcbind.kill()
                self.rpcbind.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers ---------------------------------------------------------
    def url(self, path):
        """The nfs:// URL of path (relative to the export), as qemu-img
        and nfs-ls take it."""
        return "nfs://%s%s/%s" % (self.host, self.export, path)

    def remove(self, path):
        """Remove path (relative to the export) over NFS, as another
        client would (a local unlink hides behind ganesha's cache)."""
        nfs = ctypes.CDLL("libnfs.so.13")
        nfs.nfs_init_context.restype = ctypes.c_void_p
        ctx = nfs.nfs_init_context()
        assert ctx, "nfs_init_context failed"
        try:
            rc = nfs.nfs_mount(ctypes.c_void_p(ctx), self.host.encode(), self.export.encode())
            assert rc == 0, "nfs_mount: %d" % rc
            rc = nfs.nfs_unlink(ctypes.c_void_p(ctx), ("/" + path).encode())
            assert rc == 0, "nfs_unlink %s: %d" % (path, rc)
        finally:
            nfs.nfs_destroy_context(ctypes.c_void_p(ctx))

    def path(self, *parts):
        """The local path of a file in the export."""
        return os.path.join(self.export, *parts)

    def log_tail(self, lines=30):
        try:
            with open(self.log, "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no ganesha log)"
        return "ganesha log:\n" + "\n".join(text.splitlines()[-lines:])
