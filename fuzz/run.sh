#!/usr/bin/env bash
# `make fuzz`: build the libFuzzer harnesses with clang (ASan+UBSan) and
# run each for FUZZ_SECONDS (default 60) from the seed corpus in
# fuzz/corpus/<target>; new inputs go to build/fuzz/corpus/<target>,
# crashes to build/fuzz/crash-*.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
out=build/fuzz
mkdir -p "$out"
flags=$(pkg-config --cflags libuv jansson sqlite3 libcurl openssl libxml-2.0)
libs="$(pkg-config --libs libuv jansson sqlite3 libcurl openssl libxml-2.0) -lhttp_parser -lcrypt -lm"
srcs=$(ls src/util/*.c src/model/*.c src/db/*.c src/api/*.c src/vm/*.c src/engine/*.c \
	src/storage/*.c src/console/*.c src/host/*.c)
i=0
for t in jsonrpc xmlrpc where; do
	i=$((i + 1))
	bin=$out/fuzz_$t
	clang -std=gnu11 -O1 -g -D_GNU_SOURCE -Isrc $flags -DFUZZ_TARGET=$i \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		fuzz/fuzz_rpc.c $srcs -o "$bin" $libs
	mkdir -p "$out/corpus/$t"
	echo "== fuzz $t for ${secs}s"
	"$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$out/crash-$t-" "$out/corpus/$t" "fuzz/corpus/$t" 2>&1 |
		grep -E '^(#[0-9]+ *DONE|Done|==|SUMMARY|INFO: seed)' || true
done
ls "$out"/crash-* 2>/dev/null && { echo "fuzz: crashes found"; exit 1; }
echo "fuzz: no crashes"
