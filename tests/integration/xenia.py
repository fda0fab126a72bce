"""xenia.py: the integration-test harness (Python 3 standard library only).

    d = Daemon()                      # temp data dir under /tmp, own socket
    d.start()                         # returns once the socket answers
    uuid = d.xe("vm-install", "new-name-label=a", "template=Tiny Linux").strip()
    d.xe("vm-start", "uuid=" + uuid)
    with d.console(uuid) as c:        # a long-lived `xe console` process
        c.wait_prompt()
        assert c.run("echo $((1+1))") == "2"
    d.cleanup()                       # hard-stops its VMs, kills its QEMUs,
                                      # stops the daemon, removes the dir

Every wait has a deadline; nothing here loops forever. The runner
(runner.py) adds a hard time limit per test and calls cleanup_all()
after every module, so a failed test never leaves a daemon or a QEMU
behind. Only processes whose command line names one of our own data
directories are ever killed.
"""

import errno
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build")
XE = os.path.join(BUILD, "xe")
XENIAD = os.path.join(BUILD, "xeniad")
TEMPLATE = "Tiny Linux"
PROMPT = b"root@tiny:/# "
DATA_PREFIX = "xenia-it-"

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# ---- test markers ----------------------------------------------------------

def slow(fn):
    """Mark a test as slow: the runner runs it only with --slow."""
    fn.slow = True
    return fn


def time_limit(seconds):
    """Give a test a time limit other than the runner's default."""
    def mark(fn):
        fn.time_limit = seconds
        return fn
    return mark


# ---- waiting ---------------------------------------------------------------

class WaitTimeout(AssertionError):
    pass


def wait_for(cond, timeout=30.0, interval=0.1, what="condition"):
    """Poll cond() until it returns something truthy; return that value.
    Raise WaitTimeout (an AssertionError) after timeout seconds, naming
    `what` and the last value or exception seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = cond()
            if value:
                return value
            last = repr(value)
        except Exception as e:  # the condition may fail while things settle
            last = "%s: %s" % (type(e).__name__, e)
        if time.monotonic() >= deadline:
            raise WaitTimeout("timed out after %.1fs waiting for %s (last: %s)"
                              % (timeout, what, last))
        time.sleep(interval)


# ---- processes -------------------------------------------------------------

def cmdline(pid):
    """The argv of a process, or None if it is gone (or a zombie)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if not raw:
        return None
    return [a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0")]


def qemu_pids(*needles):
    """Pids of the QEMU processes whose command line contains every needle
    (e.g. a data directory and a VM uuid)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        argv = cmdline(int(name))
        if not argv or "qemu" not in os.path.basename(argv[0]):
            continue
        text = " ".join(argv)
        if all(n in text for n in needles):
            pids.append(int(name))
    return sorted(pids)


def popen(argv, **kw):
    """subprocess.Popen, retried for a few seconds while a concurrent
    `make` rewrites the binary (EACCES, ETXTBSY)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return subprocess.Popen(argv, **kw)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.ETXTBSY) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid):
    """True if pid runs (a zombie counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def kill_pids(pids, sig=signal.SIGKILL, timeout=10.0):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


# ---- errors ----------------------------------------------------------------

class XeError(AssertionError):
    """An xe command did not exit as expected."""

    def __init__(self, args, rc, out, err, expected_ok):
        self.args_ = args
        self.rc = rc
        self.stdout = out
        self.stderr = err
        AssertionError.__init__(
            self, "xe %s: exit %s (expected %s)\n  stdout: %s\n  stderr: %s"
            % (" ".join(args), rc, "0" if expected_ok else "non-zero",
               out.strip()[-2000:], err.strip()[-2000:]))


class XeOutput(str):
    """The stdout of an xe command, with .stderr and .rc attached."""

    def __new__(cls, out, err, rc):
        s = str.__new__(cls, out)
        s.stderr = err
        s.rc = rc
        return s

    def error_code(self):
        """The XenAPI code of an `Error code: X` line on stderr, or None."""
        m = re.search(r"^Error code: (\S+)$", self.stderr, re.M)
        return m.group(1) if m else None

    def error_params(self):
        """The text of the `Error parameters: ...` line on stderr, or None."""
        m = re.search(r"^Error parameters: (.*)$", self.stderr, re.M)
        return m.group(1) if m else None


class ApiError(Exception):
    def __init__(self, code, params):
        self.code = code
        self.params = list(params)
        Exception.__init__(self, "%s %s" % (code, self.params))


# ---- JSON-RPC over the Unix socket -----------------------------------------

class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        http.client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def http_post(sock_path, path, body, content_type="application/json", timeout=60):
    """POST body to the daemon's socket; return (status, body bytes)."""
    if isinstance(body, str):
        body = body.encode()
    c = _UnixConnection(sock_path, timeout)
    try:
        c.request("POST", path, body=body, headers={"Content-Type": content_type})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


# ---- the daemon ------------------------------------------------------------

_live = []         # daemons not cleaned up yet
_report = []       # cleaned-up daemons, for the logs in failure reports


class Daemon:
    """One xeniad on a temporary data dir, with its own socket."""

    def __init__(self, shutdown_timeout=None, name="d", extra_args=()):
        self.data_dir = tempfile.mkdtemp(prefix=DATA_PREFIX + name + "-", dir="/tmp")
        self.socket = os.path.join(self.data_dir, "xapi.sock")
        self.log_path = os.path.join(self.data_dir, "xeniad.log")
        self.shutdown_timeout = shutdown_timeout
        self.extra_args = list(extra_args)
        self.proc = None
        self.session = None
        self.cleaned = False
        self.created = time.monotonic()
        self.cleaned_at = None
        self._log_cache = None
        self.env = dict(os.environ, XENIA_SOCKET=self.socket)
        self.env.pop("XE_EXTRA_ARGS", None)
        self.env["HOME"] = self.data_dir  # no ~/.xe defaults
        _live.append(self)

    # -- process control --
    def start(self, timeout=60):
        assert self.proc is None or self.proc.poll() is not None, "daemon already running"
        argv = [XENIAD, "--data-dir", self.data_dir, "--socket", self.socket]
        if self.shutdown_timeout is not None:
            argv += ["--shutdown-timeout", str(self.shutdown_timeout)]
        argv += self.extra_args
        log = open(self.log_path, "ab")
        log.write(b"==== start %s\n" % " ".join(argv).encode())
        log.flush()
        deadline = time.monotonic() + timeout
        try:
            self.proc = popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                              stderr=subprocess.STDOUT, env=self.env)
        finally:
            log.close()
        self.session = None
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("xeniad exited with %s while starting:\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            try:
                self.login()
                return self
            except (OSError, ApiError, http.client.HTTPException, ValueError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("xeniad did not answer on %s within %ss:\n%s"
                                     % (self.socket, timeout, self.log_tail()))
            time.sleep(0.05)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def stop(self, timeout=30):
        """SIGTERM, as an administrator stops it; SIGKILL if it hangs.
        Returns the exit status."""
        if not self.running():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError("xeniad did not stop within %ss of SIGTERM" % timeout)

    def kill9(self):
        if self.running():
            self.proc.kill()
            self.proc.wait(30)

    def restart(self):
        self.stop()
        return self.start()

    # -- logs --
    def log_text(self):
        if self._log_cache is not None:
            return self._log_cache
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- xe and the API --
    def xe_run(self, *args, timeout=120, input=None):
        argv = [XE] + [str(a) for a in args]
        p = popen(argv, env=self.env, stdin=subprocess.PIPE if input is not None else
                  subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            p.kill()
            p.communicate()
            raise AssertionError("xe %s: no exit within %ss" % (" ".join(argv[1:]), timeout)) from e
        except BaseException:
            p.kill()
            p.wait()
            raise
        return XeOutput(out.decode(errors="replace"), err.decode(errors="replace"), p.returncode)

    def xe(self, *args, ok=True, timeout=120, input=None):
        """Run xe against this daemon. ok=True: expect exit 0 and return
        stdout. ok=False: expect a non-zero exit and return the output
        (use .stderr, .error_code(), .error_params()). Anything else
        raises XeError with both streams."""
        out = self.xe_run(*args, timeout=timeout, input=input)
        if (out.rc == 0) != ok:
            raise XeError([str(a) for a in args], out.rc, str(out), out.stderr, ok)
        return out

    def rpc(self, body, path="/jsonrpc", timeout=60):
        return http_post(self.socket, path, body, timeout=timeout)

    def call(self, method, params, version="2.0", timeout=60):
        """A raw JSON-RPC call: the decoded reply object."""
        req = {"method": method, "params": params, "id": secrets.randbelow(1 << 30)}
        if version:
            req["jsonrpc"] = version
        status, body = self.rpc(json.dumps(req), timeout=timeout)
        if status != 200:
            raise ApiError("HTTP_%d" % status, [body.decode(errors="replace")])
        return json.loads(body)

    def login(self):
        reply = self.call("session.login_with_password", ["root", "", "2.21", "xenia-tests"],
                          timeout=5)
        if "error" in reply and reply["error"]:
            e = reply["error"]
            raise ApiError(e.get("message"), e.get("data", []))
        self.session = reply["result"]
        return self.session

    def api(self, method, *params, timeout=120):
        """Call a XenAPI method with this daemon's session; the result, or
        ApiError(code, params)."""
        if not self.session:
            self.login()
        reply = self.call(method, [self.session] + list(params), timeout=timeout)
        e = reply.get("error")
        if e:
            raise ApiError(e.get("message"), e.get("data", []))
        return reply.get("result")

    # -- VMs --
    def install(self, name, template=TEMPLATE):
        out = self.xe("vm-install", "new-name-label=" + name, "template=" + template).strip()
        assert UUID_RE.match(out), "vm-install printed %r, not a uuid" % out
        return out

    def vm_param(self, uuid, name, key=None):
        args = ["vm-param-get", "uuid=" + uuid, "param-name=" + name]
        if key:
            args.append("param-key=" + key)
        return self.xe(*args).strip()

    def power_state(self, uuid):
        return self.vm_param(uuid, "power-state")

    def vm_set(self, uuid, **params):
        self.xe("vm-param-set", "uuid=" + uuid,
                *["%s=%s" % (k.replace("_", "-"), v) for k, v in params.items()])

    def allowed_ops(self, uuid):
        return set(x.strip() for x in self.vm_param(uuid, "allowed-operations").split(";")
                   if x.strip())

    def vms(self):
        """{uuid: power-state} of every VM but the control domain."""
        out = self.xe("vm-list", "is-control-domain=false", "params=uuid,power-state")
        return dict(_records(out, "uuid", "power-state"))

    def qemu_pids(self, uuid=""):
        """QEMUs started from this data dir (for one VM if uuid is given)."""
        return qemu_pids(self.data_dir + "/", uuid)

    def qemu_pid(self, uuid, timeout=10):
        """The single QEMU of a VM (waits for there to be exactly one)."""
        pids = wait_for(lambda: (lambda p: p if len(p) == 1 else None)(self.qemu_pids(uuid)),
                        timeout, what="exactly one QEMU for VM %s" % uuid)
        return pids[0]

    def sr_dir(self):
        """The local SR's directory (the only SR here)."""
        root = os.path.join(self.data_dir, "sr")
        dirs = [os.path.join(root, d) for d in os.listdir(root)]
        assert len(dirs) == 1, "expected one SR directory, found %s" % dirs
        return dirs[0]

    def console(self, uuid, **kw):
        return Console(self, uuid, **kw)

    # -- teardown --
    def cleanup(self):
        """Hard-stop every VM, stop the daemon, kill any QEMU left from
        this data dir, remove the dir. Safe to call twice."""
        if self.cleaned:
            return
        bridges = []
        try:
            if self.running():
                try:
                    for uuid, state in self.vms().items():
                        if state != "halted":
                            self.xe_run("vm-shutdown", "uuid=" + uuid, "--force", timeout=30)
                    # the bridges its networks made (never the host's own)
                    bridges = [b for b in self.xe_run("network-list", "params=bridge",
                                                      "--minimal").split(",")
                               if re.match(r"^(xapi|xenbr)\d+$", b.strip())]
                except Exception:
                    pass
            try:
                self.stop(timeout=15)
            except Exception:
                self.kill9()
        finally:
            kill_pids(qemu_pids(self.data_dir + "/"))
            for b in bridges:
                subprocess.run(["ip", "link", "del", b.strip()], capture_output=True, timeout=30)
            self._log_cache = self.log_text()
            if not os.environ.get("XENIA_TEST_KEEP"):
                shutil.rmtree(self.data_dir, ignore_errors=True)
            self.cleaned = True
            self.cleaned_at = time.monotonic()
            if self in _live:
                _live.remove(self)
            _report.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


def _records(text, *fields):
    """Parse xe's record output: a list of tuples of the given fields."""
    recs, cur = [], {}
    for line in text.splitlines() + [""]:
        if not line.strip():
            if cur:
                recs.append(tuple(cur.get(f) for f in fields))
            cur = {}
            continue
        m = re.match(r"^\s*([^\s(]+) \([ SM]R[OW]\)\s*: ?(.*)$", line)
        if m:
            cur[m.group(1)] = m.group(2)
    return recs


def records(text, *fields):
    return _records(text, *fields)


def param_list(text):
    """xe <cls>-param-list output as {field: value}."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([^\s(]+) \([ SM]R[OW]\)\s*: ?(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def host_links():
    """{name: `ip -o link` line} of the host's network interfaces."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    return {m.group(1): line for line in out.splitlines()
            for m in [re.match(r"\d+: ([^:@]+)", line)] if m}


def live_daemons():
    return list(_live)


def daemons_since(t):
    """Daemons alive at some point after monotonic time t (for reports)."""
    return [d for d in _live + _report if d.cleaned_at is None or d.cleaned_at >= t]


def cleanup_all():
    for d in list(_live):
        try:
            d.cleanup()
        except Exception:
            pass


def emergency_kill():
    """Last resort (the runner's watchdog): SIGKILL our daemons and QEMUs
    without talking to anyone."""
    for d in list(_live):
        try:
            if d.proc and d.proc.poll() is None:
                d.proc.kill()
        except Exception:
            pass
        kill_pids(qemu_pids(d.data_dir + "/"), timeout=2)
        if not os.environ.get("XENIA_TEST_KEEP"):
            shutil.rmtree(d.data_dir, ignore_errors=True)


# ---- the serial console ------------------------------------------------------

class Console:
    """A long-lived `xe console vm=...` with pipes. A thread collects
    everything the console prints into self.buf; expect() waits for a
    pattern in it, run() types a command and returns its output."""

    def __init__(self, daemon, uuid, scrollback=0, linger=1):
        self.daemon = daemon
        self.uuid = uuid
        self.buf = bytearray()
        self.cond = threading.Condition()
        self.eof = False
        argv = [XE, "console", "uuid=" + uuid, "scrollback=%d" % scrollback,
                "linger=%s" % linger]
        self.proc = popen(argv, env=daemon.env, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            with self.cond:
                if not chunk:
                    self.eof = True
                    self.cond.notify_all()
                    return
                self.buf += chunk
                self.cond.notify_all()

    def alive(self):
        return self.proc.poll() is None and not self.eof

    def mark(self):
        with self.cond:
            return len(self.buf)

    def text(self, start=0):
        with self.cond:
            return bytes(self.buf[start:]).decode(errors="replace")

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as e:
            raise AssertionError("console of %s is closed: %s\n%s"
                                 % (self.uuid, e, self._describe())) from e

    def _describe(self):
        err = b""
        if self.proc.poll() is not None:
            try:
                err = self.proc.stderr.read() or b""
            except Exception:
                pass
        return "console exit %s, stderr %r, last output:\n%s" % (
            self.proc.poll(), err.decode(errors="replace")[-500:], self.text()[-800:])

    def expect(self, pattern, timeout=30, start=0):
        """Wait until the output from offset start matches pattern (bytes
        regex); return the match (offsets are absolute in self.buf)."""
        rx = re.compile(pattern if isinstance(pattern, bytes) else pattern.encode())
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                m = rx.search(self.buf, start)
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    break
                self.cond.wait(min(left, 0.5))
        raise WaitTimeout("console of %s: no %r within %ss%s\n%s"
                          % (self.uuid, rx.pattern, timeout,
                             " (console closed)" if self.eof else "", self._describe()))

    def wait_prompt(self, timeout=120):
        """Press Enter until the shell prompt answers (keys typed while the
        guest boots are lost, so keep pressing)."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.mark()
            self.send(b"\n")
            try:
                self.expect(re.escape(PROMPT), timeout=max(0.1, min(3, deadline - time.monotonic())),
                            start=m)
                return
            except WaitTimeout:
                if time.monotonic() >= deadline or not self.alive():
                    raise

    def run(self, cmd, timeout=30):
        """Type cmd at the prompt and return what it printed (without the
        trailing newline, \\r removed). The output is framed by two unique
        markers computed by the shell, so the echo of the typed line never
        matches."""
        tok = secrets.token_hex(4)
        m = self.mark()
        cmd = cmd.rstrip()
        sep = " " if cmd.endswith("&") else "; "  # "x & ; y" is a syntax error
        self.send("echo B-$((6*7))-%s; %s%secho E-$((6*7))-%s\n" % (tok, cmd, sep, tok))
        b = self.expect(b"B-42-" + tok.encode() + b"\r?\n", timeout, start=m)
        e = self.expect(b"E-42-" + tok.encode(), timeout, start=b.end())
        out = bytes(self.buf[b.end():e.start()]).decode(errors="replace")
        return out.replace("\r", "").rstrip("\n")

    def close(self):
        """Detach: xe console gets SIGTERM (it lingers after stdin ends,
        which would only slow the tests down)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.reader.join(5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except Exception:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
