# syntax=docker/dockerfile:1
#
# Doppel's images, from one build:
#   docker build -t doppel .                                  # the service (last stage, the default)
#   docker build --target advance-sim -t doppel-advance-sim .  # the vendor simulator
#   docker build --target demo -t doppel-demo .                # the demo run by docker compose
#
# Runtime image: alpine with a non-root user rather than distroless. Distroless static has no
# shell and no HTTP client, so neither a HEALTHCHECK nor a compose healthcheck could probe
# /healthz without a probe binary that doppel does not have; busybox's wget in alpine does it for
# about 8 MB. The healthchecks themselves live in docker-compose.yml, not here, because the port
# comes from DOPPEL_HTTP_ADDR and orchestrators such as Kubernetes ignore HEALTHCHECK anyway.

# The builder runs on the build machine's platform and cross-compiles (pure Go, CGO off), so a
# multi-arch `docker buildx build --platform linux/amd64,linux/arm64` needs no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH
# `doppel version` and doppel_build_info: the build context has no .git, so Go cannot stamp the
# commit; pass both, e.g. --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD).
ARG VERSION=dev
ARG COMMIT=unknown
# Static binaries: CGO off, so they run on any base image without libc; -trimpath keeps build
# paths out of them; the migrations are embedded, so nothing else needs copying. The images ship
# doppel, advance-sim and doppel-demo; cmd/doppel-bench and cmd/doppel-soak drive the host's
# processes and are not shipped.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOFLAGS=-buildvcs=false \
    go build -trimpath -o /out/ \
      -ldflags="-s -w -X github.com/doppelhq/doppel/internal/buildinfo.version=$VERSION -X github.com/doppelhq/doppel/internal/buildinfo.commit=$COMMIT" \
      ./cmd/doppel ./cmd/advance-sim ./cmd/doppel-demo

FROM alpine:3.23 AS runtime
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
RUN addgroup -S -g 10001 doppel && adduser -S -D -H -u 10001 -G doppel -s /sbin/nologin doppel
USER 10001:10001
WORKDIR /

FROM runtime AS advance-sim
COPY --from=build /out/advance-sim /usr/local/bin/advance-sim
# The simulator listens on loopback by default, which no other container could reach.
ENV ADVANCE_SIM_ADDR=0.0.0.0:8090
EXPOSE 8090
ENTRYPOINT ["advance-sim"]

# The demo: seeds advance-sim, publishes events and prints the rings and alerts that came out.
FROM runtime AS demo
COPY --from=build /out/doppel-demo /usr/local/bin/doppel-demo
ENTRYPOINT ["doppel-demo"]

# The service is the last stage, so a plain `docker build` produces it.
FROM runtime AS doppel
COPY --from=build /out/doppel /usr/local/bin/doppel
EXPOSE 8080
ENTRYPOINT ["doppel"]
CMD ["serve"]
