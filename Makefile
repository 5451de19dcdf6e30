# Two commands matter: `make run` (the main job on SQLite) and `make test` (set up + every check).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install browser run test lint fmt typecheck pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@# Bytecode for our own modules too (pip compiles only what it installs): where PYTHONDONTWRITEBYTECODE
	@# is set, every `tracker` command would otherwise compile them again, a tenth of its start.
	$(BIN)/python -m compileall -q tracker
	touch $(STAMP)

install: $(STAMP)

# Browser tests drive Debian's Chromium (Playwright never downloads one). Installed when missing and we can;
# otherwise say why and go on: those tests then skip, or fail under TRACKER_REQUIRE_BROWSER=1. Despite its
# name, TRACKER_REQUIRE_BROWSER=1 (set by CI) requires every system tool this target installs, not only the
# browser: tests needing any of them fail instead of skipping.
CHROMIUM ?= /usr/bin/chromium
SKIPPING := browser tests will skip (or fail, with TRACKER_REQUIRE_BROWSER=1)
# fonts-noto-cjk: without a CJK font the Chinese pages (and the switcher's 中文) screenshot as empty boxes.
# libical3: the calendar library of Evolution; tests check every email's .ics against its RFC 5546 rules.
# dovecot-imapd: the real IMAP server `tracker bounces poll` is tested against (tests/support/imap_server.py).
browser:
	@if [ -x "$(CHROMIUM)" ] && fc-list :lang=zh 2>/dev/null | grep -q . && ldconfig -p 2>/dev/null | grep -q libical.so \
	    && { command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ]; }; then \
	  :; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "browser: no $(CHROMIUM), CJK font, libical or Dovecot, and not root, so not installing them: $(SKIPPING)"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "browser: no $(CHROMIUM) and no apt-get to install chromium: $(SKIPPING)"; \
	else \
	  echo "browser: installing Debian chromium, chromium-driver, fonts-noto-cjk, libical3 and dovecot-imapd"; \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver fonts-noto-cjk libical3 dovecot-imapd; } \
	    >/tmp/tracker-browser-apt.log 2>&1 \
	    || echo "browser: apt-get failed (see /tmp/tracker-browser-apt.log): $(SKIPPING)"; \
	fi

run: install
	$(BIN)/tracker run

lint: install
	$(BIN)/ruff check tracker tests bench
	$(BIN)/ruff format --check tracker tests bench

fmt: install
	$(BIN)/ruff format tracker tests bench
	$(BIN)/ruff check --fix tracker tests bench

typecheck: install
	$(BIN)/mypy

# Every core runs a share of the suite (pytest-xdist); the tests that kill instances and wait on the clock
# (marked `serial`) run after, alone, so that no other test's load decides whether a lease ran out.
pytest: install browser
	$(BIN)/pytest -n auto -m "not serial" --durations=15
	$(BIN)/pytest -m serial --durations=5

test: lint typecheck pytest

bench: install
	$(BIN)/python bench/bench_startup.py
	$(BIN)/python bench/bench_sync.py
	$(BIN)/python bench/bench_feeds.py --install
	$(BIN)/python bench/bench_mail.py --install
	$(BIN)/python bench/bench_delivery.py --install
	$(BIN)/python bench/bench_changes.py
	$(BIN)/python bench/bench_import.py
	$(BIN)/python bench/bench_pages.py --install

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
