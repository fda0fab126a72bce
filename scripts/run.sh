#!/usr/bin/env bash
# `make run`: start xeniad in the foreground with its data under ./var
# and its API on the default socket, after saying how to use it.
set -euo pipefail
cd "$(dirname "$0")/.."
sock=${XENIA_SOCKET:-/run/xenia/xapi.sock}
# the API and the web console over HTTPS (XENIA_LISTEN= for the socket only)
listen=${XENIA_LISTEN-127.0.0.1:8443}
mkdir -p var
cat <<MSG
Xenia is starting (data in $PWD/var, API on $sock).
In another terminal:
    export PATH=$PWD/build:\$PATH
    xe template-list
    xe vm-install template="Tiny Linux" new-name-label=web1
    xe vm-start vm=web1
    xe console vm=web1          # Ctrl-] detaches
The root password for remote clients is in var/root-password.${listen:+
The web console: https://$listen/ (user root, that password).}
Stop with Ctrl-C: running VMs keep running, and the next start re-attaches.
MSG
exec build/xeniad --data-dir var --socket "$sock" ${listen:+--listen "$listen"}
