# syntax=docker/dockerfile:1
# roomcastd in a container: built on Debian bookworm with the same packages
# as scripts/install-deps, run as a non-root user on the runtime libraries
# only. Configuration is ROOMCAST_* environment (docs/configuration.md);
# docker-compose.yml runs three of these behind nginx (docs/deploy.md).
#
#   docker build -t roomcast .
#   docker run --rm -p 8080:8080 roomcast          # ws://localhost:8080/ws

# -- build ---------------------------------------------------------------------
FROM debian:bookworm AS build
WORKDIR /src
# The package list has one source of truth; copied alone so that the layer
# is reused until it changes.
COPY scripts/install-deps scripts/install-deps
RUN scripts/install-deps && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build /build --target roomcastd -j "$(nproc)" \
 && strip --strip-debug -o /roomcastd /build/roomcastd

# -- runtime -------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
# The shared libraries roomcastd links (Boost.Beast/Asio and nlohmann-json
# are header-only; libspdlog1.10 brings libfmt9), librabbitmq4 for the AMQP
# bridge, and curl for the health check.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libcaf-core0.17 libcaf-io0.17 libspdlog1.10 libjwt0 librabbitmq4 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --uid 10001 --home-dir /nonexistent \
      --no-create-home --shell /usr/sbin/nologin roomcast
COPY --from=build /roomcastd /usr/local/bin/roomcastd
COPY scripts/docker-entrypoint /usr/local/bin/docker-entrypoint
# The demo page and roomcast.js (the binary's compiled-in default points
# into the build stage's source tree).
COPY web/ /usr/share/roomcast/web/
ENV ROOMCAST_WEB_ROOT=/usr/share/roomcast/web

USER 10001:10001
# HTTP and WebSocket; the cluster port that docker-compose.yml uses.
EXPOSE 8080 9100
# 503 while draining (SIGTERM), so a stopping node reports unhealthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${ROOMCAST_HTTP_PORT:-8080}/healthz" || exit 1
# SIGTERM drains: stop accepting, hand rooms and users to the other nodes,
# close WebSockets with 1001 (up to --drain-timeout, 10 s by default).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/docker-entrypoint"]
CMD []
