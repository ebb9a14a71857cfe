# The inbox image: the static binary, CA certificates (forwards and
# Twilio's API are https) and a passwd naming its non-root user, on
# scratch, so building it pulls no base image from any registry. Build it
# with ./scripts/image (docker or buildah), which first stages those files
# in .bin/image/rootfs/ from this checkout: the binary built with
# CGO_ENABLED=0 -trimpath and the version stamped, the certificates from
# the build machine.
#
# Run it (docs/deploy.md): `inbox migrate up` once per release, then
# `serve` (the default) and, if processing scales apart, `work`. It listens
# on 0.0.0.0:8080 (the webhook) and 0.0.0.0:9090 (the admin listener, which
# then refuses to start without ADMIN_TOKEN). No HEALTHCHECK: orchestrators
# probe GET /healthz (liveness) and GET /readyz (readiness).
FROM scratch
COPY .bin/image/rootfs/ /
USER 65532:65532
ENV LISTEN_ADDR=0.0.0.0:8080 ADMIN_ADDR=0.0.0.0:9090 LOG_FORMAT=json
EXPOSE 8080 9090
ENTRYPOINT ["/inbox"]
CMD ["serve"]
