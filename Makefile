# Xenia build. `make` builds the daemon, the CLI and the built-in template
# into build/; `make run` and `make test` are the two commands of the
# README (both install the Debian packages they need first).

CC       ?= cc
PKGS     := libuv jansson sqlite3 libcurl openssl libxml-2.0 libnfs libnbd libnl-3.0 libnl-route-3.0 \
            libbpf librrd ncursesw libarchive libxxhash ext2fs com_err
CFLAGS   ?= -O2 -g
XCFLAGS  := -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Isrc \
            -D_GNU_SOURCE -fno-strict-aliasing \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS     := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lwslay -lcrypt -lm

B        := build
LIB_SRC  := $(wildcard src/util/*.c src/model/*.c src/db/*.c src/api/*.c \
              src/vm/*.c src/engine/*.c src/storage/*.c src/console/*.c \
              src/host/*.c src/net/*.c src/metrics/*.c)
CLI_SRC  := $(wildcard src/cli/*.c)
D_SRC    := $(wildcard src/daemon/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)

# Normal build and a sanitizer build (unit tests) side by side.
OBJ      = $(patsubst %.c,$(1)/obj/%.o,$(2))
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: all run test test-unit test-integration test-slow test-e2e bench clean deps image fuzz web
all: $(B)/xeniad $(B)/xe image web

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"; $(CC) $(XCFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/asan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC(asan) $<"; $(CC) $(XCFLAGS) -O1 -g $(SAN) -MMD -MP -c $< -o $@

$(B)/libxenia.a: $(call OBJ,$(B),$(LIB_SRC))
	@rm -f $@
	ar rcs $@ $^

$(B)/asan/libxenia.a: $(call OBJ,$(B)/asan,$(LIB_SRC))
	@rm -f $@
	ar rcs $@ $^

$(B)/xeniad: $(call OBJ,$(B),$(D_SRC)) $(B)/libxenia.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

$(B)/xe: $(call OBJ,$(B),$(CLI_SRC)) $(B)/libxenia.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

# Unit tests: one binary per tests/unit/test_*.c, under ASan and UBSan.
$(B)/asan/tests/%: tests/unit/%.c $(B)/asan/libxenia.a tests/unit/check.h tests/unit/check_err.h tests/unit/uvwait.h
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) -O1 -g $(SAN) -Itests/unit -o $@ $< $(B)/asan/libxenia.a $(LIBS)

# The CLI's unit tests link its objects too (all but main).
CLI_LIB_SRC := $(filter-out src/cli/xe.c,$(CLI_SRC))
$(B)/asan/tests/test_cli: tests/unit/test_cli.c $(call OBJ,$(B)/asan,$(CLI_LIB_SRC)) $(B)/asan/libxenia.a tests/unit/check.h
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) -O1 -g $(SAN) -Itests/unit -o $@ $< $(call OBJ,$(B)/asan,$(CLI_LIB_SRC)) $(B)/asan/libxenia.a $(LIBS)

UNIT_BIN := $(patsubst tests/unit/%.c,$(B)/asan/tests/%,$(UNIT_SRC))

image: $(B)/images/debian/install.sh
	@images/tiny-linux/build.sh $(B)/images/tiny-linux
	@images/install-iso/build.sh $(B)/images/tiny-linux $(B)/images/install-iso

# The "Debian 12" template's installer, which xeniad runs at install.
$(B)/images/debian/install.sh: images/debian/install.sh
	@install -D -m 755 $< $@

# The web console: web/ built by vite into build/web, which xeniad
# serves. npm installs the lock file's versions, only when the lock is
# newer than the last install (npm records each install in
# node_modules/.package-lock.json). `npm install`, not `npm ci`: rollup
# lists optional binaries for every platform, and a registry mirror that
# lacks some of them makes `npm ci` refuse a lock that omits them.
WEB_SRC := $(shell find web/src -type f 2>/dev/null) web/index.html web/vite.config.js
web: $(B)/web/index.html
$(B)/web/index.html: $(WEB_SRC) web/node_modules/.package-lock.json
	@echo "  WEB $(B)/web"; cd web && XENIA_WEB_OUT=$(abspath $(B)/web) npx --no-install vite build --logLevel warn
web/node_modules/.package-lock.json: web/package-lock.json
	@echo "  NPM web"; cd web && npm install --no-audit --no-fund --loglevel=error
	@touch $@

deps:
	@scripts/install-deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run.sh

test: deps
	@scripts/install-deps.sh --test
	@$(MAKE) --no-print-directory all $(UNIT_BIN)
	@tests/run.sh

test-unit: $(UNIT_BIN)
	@tests/run.sh --unit-only

test-e2e: deps
	@scripts/install-deps.sh --test
	@$(MAKE) --no-print-directory all
	@tests/run.sh --e2e-only

test-slow: deps
	@$(MAKE) --no-print-directory all $(UNIT_BIN)
	@tests/run.sh --slow

fuzz: deps
	@scripts/install-deps.sh --fuzz
	@fuzz/run.sh

bench: deps all
	@scripts/install-deps.sh --bench
	@bench/vm-start

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
