# Headless Chromium for the console's browser test (cmd/inbox/console_test.go).
# browser_ensure finds it, or installs Debian's chromium package where it can
# (root and apt-get), and then exports INBOX_REQUIRE_BROWSER so that the test
# fails rather than skips if the browser goes missing. Where it cannot be
# installed, it says so loudly and the test skips, saying so again.

browser_log() { echo "browser: $*" >&2; }

browser_found() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1; }

browser_ensure() {
	if browser_found; then
		export INBOX_REQUIRE_BROWSER=1
		return 0
	fi
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		browser_log "installing the distribution's chromium package (once; this takes a minute or two)"
		if { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >&2 && browser_found; then
			export INBOX_REQUIRE_BROWSER=1
			return 0
		fi
	fi
	browser_log "*****************************************************************************"
	browser_log "NO BROWSER: Chromium is not installed and could not be (needs root and apt-get)."
	browser_log "The console's browser test will be SKIPPED. Install chromium to run it."
	browser_log "*****************************************************************************"
}
