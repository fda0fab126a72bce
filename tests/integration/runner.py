#!/usr/bin/env python3
"""runner.py: run the integration tests (Python 3 standard library only).

    runner.py [--slow] [-k SUBSTRING] [FILE ...]

Discovers tests/integration/test_*.py (or the given files), and in each
module runs setup_module() if there is one, then every module-level
function named test_* in source order, then teardown_module(). Tests
marked @xenia.slow run only with --slow. Prints one line per test:

    PASS test_cli.test_host_list (0.3s)
    FAIL test_cli.test_help: AssertionError: ...
        <traceback and the tail of every daemon log involved, indented>

Each test has a hard time limit (default 120 s, @xenia.time_limit(n) to
change it): at the limit a TestTimeout is raised in the test, so its own
cleanup still runs; if the test is still not back a minute later, the
runner kills every daemon and QEMU of the harness and exits. After each
module every daemon still alive is cleaned up (VMs hard-stopped, QEMUs
killed, data dir removed). Exit status 1 if any test failed.
"""

import argparse
import glob
import importlib.util
import os
import signal
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import xenia  # noqa: E402

DEFAULT_LIMIT = 120
MODULE_LIMIT = 180
GRACE = 60


class TestTimeout(BaseException):
    """Raised in a test at its time limit. A BaseException, so that the
    `except Exception` of polling loops does not swallow it."""


def _on_alarm(signum, frame):
    raise TestTimeout("time limit reached")


def _on_term(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


def say(line=""):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def indent(text, prefix="    "):
    return "\n".join(prefix + l for l in text.rstrip("\n").splitlines())


def run_limited(fn, limit, name):
    """fn() under a time limit. Returns None or (reason, details)."""
    def watchdog():
        say("FAIL %s: still running %ds after its %ds time limit; killing everything"
            % (name, GRACE, limit))
        xenia.emergency_kill()
        os._exit(1)

    dog = threading.Timer(limit + GRACE, watchdog)
    dog.daemon = True
    dog.start()
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        fn()
        return None
    except TestTimeout:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return ("time limit of %ds reached" % limit, traceback.format_exc())
    except BaseException as e:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if isinstance(e, KeyboardInterrupt):
            raise
        first = (str(e).strip().splitlines() or [""])[0]
        return ("%s: %s" % (type(e).__name__, first[:400]), traceback.format_exc())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        dog.cancel()


def report_failure(name, reason, details, since):
    say("FAIL %s: %s" % (name, reason))
    say(indent(details))
    for d in xenia.daemons_since(since):
        tail = d.log_tail(30)
        if tail:
            say("    --- xeniad log %s (last lines) ---" % d.data_dir)
            say(indent(tail, "    | "))


def load(path):
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def tests_of(mod):
    fns = [f for n, f in vars(mod).items()
           if n.startswith("test_") and callable(f) and getattr(f, "__module__", None) == mod.__name__]
    return sorted(fns, key=lambda f: f.__code__.co_firstlineno)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slow", action="store_true", help="also run the tests marked slow")
    ap.add_argument("-k", dest="match", help="run only tests whose name contains this")
    ap.add_argument("files", nargs="*")
    opts = ap.parse_args()

    for binary in (xenia.XE, xenia.XENIAD):
        if not os.access(binary, os.X_OK):
            say("FAIL integration: %s is not built (make build/xeniad build/xe image)" % binary)
            return 1

    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    files = opts.files or sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    passed = failed = skipped = 0
    t_all = time.monotonic()
    try:
        for path in files:
            modname = os.path.splitext(os.path.basename(path))[0]
            since = time.monotonic()
            try:
                mod = load(path)
            except Exception:
                report_failure(modname, "cannot import", traceback.format_exc(), since)
                failed += 1
                continue
            tests = [t for t in tests_of(mod)
                     if not opts.match or opts.match in "%s.%s" % (modname, t.__name__)]
            runnable = []
            for t in tests:
                if getattr(t, "slow", False) and not opts.slow:
                    say("SKIP %s.%s (slow; run with --slow)" % (modname, t.__name__))
                    skipped += 1
                else:
                    runnable.append(t)
            if not runnable:
                continue
            setup_err = None
            if hasattr(mod, "setup_module"):
                setup_err = run_limited(mod.setup_module, MODULE_LIMIT, modname + ".setup_module")
            try:
                for t in runnable:
                    name = "%s.%s" % (modname, t.__name__)
                    since = time.monotonic()
                    if setup_err:
                        report_failure(name, "setup_module failed: " + setup_err[0], setup_err[1],
                                       since)
                        failed += 1
                        continue
                    err = run_limited(t, getattr(t, "time_limit", DEFAULT_LIMIT), name)
                    if err:
                        report_failure(name, err[0], err[1], since)
                        failed += 1
                    else:
                        say("PASS %s (%.1fs)" % (name, time.monotonic() - since))
                        passed += 1
            finally:
                if hasattr(mod, "teardown_module"):
                    since = time.monotonic()
                    err = run_limited(mod.teardown_module, MODULE_LIMIT, modname + ".teardown_module")
                    if err:
                        report_failure(modname + ".teardown_module", err[0], err[1], since)
                        failed += 1
                xenia.cleanup_all()
    except KeyboardInterrupt:
        say("FAIL integration: interrupted")
        failed += 1
    finally:
        xenia.cleanup_all()
    say("integration tests: %d passed, %d failed, %d skipped in %.0fs"
        % (passed, failed, skipped, time.monotonic() - t_all))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
