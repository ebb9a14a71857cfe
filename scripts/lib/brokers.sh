# The message brokers the broker destinations' tests start privately
# (internal/brokertest): nats-server (with JetStream) and a RabbitMQ node.
# brokers_ensure finds their binaries, or installs Debian's nats-server and
# rabbitmq-server packages where it can (root and apt-get), and then
# exports INBOX_REQUIRE_BROKERS so that those tests fail rather than skip if
# a broker goes missing. Where they cannot be installed, it says so loudly
# and the tests skip, saying so again. The tests never use a broker the
# machine already runs: each starts its own, on its own port and data.

brokers_log() { echo "brokers: $*" >&2; }

brokers_found() {
	{ command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]; } &&
		[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]
}

brokers_ensure() {
	if brokers_found; then
		export INBOX_REQUIRE_BROKERS=1
		return 0
	fi
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		brokers_log "installing the distribution's nats-server and rabbitmq-server packages (once; this takes a minute or two)"
		# policy-rc.d 101: install only; the tests start private brokers.
		local policy=/usr/sbin/policy-rc.d made_policy=""
		if [ ! -e "$policy" ]; then
			printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
		fi
		if { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server rabbitmq-server; } >&2 && brokers_found; then
			[ -n "$made_policy" ] && rm -f "$policy"
			export INBOX_REQUIRE_BROKERS=1
			return 0
		fi
		[ -n "$made_policy" ] && rm -f "$policy"
	fi
	brokers_log "*****************************************************************************"
	brokers_log "NO BROKERS: nats-server and RabbitMQ are not installed and could not be (needs root and apt-get)."
	brokers_log "The NATS and RabbitMQ destinations' tests will be SKIPPED. Install nats-server and rabbitmq-server to run them."
	brokers_log "*****************************************************************************"
}
