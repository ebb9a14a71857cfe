# shellcheck shell=bash
# A tool to build and run container images with, for scripts/image and the
# image test (cmd/inbox/image_test.go).
#
#   image_tool_ensure  sets IMAGE_TOOL to docker (when its daemon answers) or
#                      buildah (installing Debian's package when neither is
#                      here and we are root), and exports INBOX_REQUIRE_IMAGE
#                      so that the test fails rather than skips without it;
#                      says loudly when there is none.
#   image_size IMAGE   the image's size, as the tool reports it.

image_log() { echo "image: $*" >&2; }

image_tool_ensure() {
	if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
		IMAGE_TOOL=docker
	elif command -v buildah >/dev/null 2>&1; then
		IMAGE_TOOL=buildah
	elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		image_log "installing the distribution's buildah package (once; this takes a minute)"
		if { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah; } >&2 &&
			command -v buildah >/dev/null 2>&1; then
			IMAGE_TOOL=buildah
		fi
	fi
	if [ -z "${IMAGE_TOOL:-}" ]; then
		image_log "*****************************************************************************"
		image_log "NO IMAGE TOOL: neither docker (with a daemon) nor buildah, and buildah could"
		image_log "not be installed (needs root and apt-get). The image test will be SKIPPED."
		image_log "*****************************************************************************"
		return 1
	fi
	export IMAGE_TOOL INBOX_REQUIRE_IMAGE=1
}

image_size() {
	case $IMAGE_TOOL in
	docker) docker image inspect --format '{{.Size}} bytes' "$1" ;;
	buildah) buildah --storage-driver vfs images --format '{{.Size}}' "$1" ;;
	esac
}
