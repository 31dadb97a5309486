# Dockerfile — weir on debian:bookworm-slim, built in a first stage, run as a non-root user.
#
#   docker build -t weir .
#   docker run -p 8080:8080 -v weir-data:/var/lib/weir --stop-timeout 45 weir
#
# SIGTERM drains (up to --drain-timeout); give `docker stop` more time than that (--stop-timeout
# or `docker stop -t 45`), or Docker's default 10 s ends the drain with SIGKILL. Flags after
# the image name replace the default CMD below.

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      g++ make python3 libssl-dev libsimdjson-dev node-llhttp zlib1g-dev libhiredis-dev \
      libsqlite3-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY core core
COPY net net
COPY ws ws
COPY cluster cluster
COPY store store
COPY server server
COPY tools/embed_assets.py tools/
RUN make -j"$(nproc)" BUILD=build build/weir && strip build/weir

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libssl3 libsimdjson14 zlib1g libhiredis0.14 libsqlite3-0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/weir --create-home \
      --shell /usr/sbin/nologin weir \
 && chmod 0700 /var/lib/weir
COPY --from=build /src/build/weir /usr/local/bin/weir
USER 10001:10001
WORKDIR /var/lib/weir
VOLUME /var/lib/weir
# 8080: HTTP and WebSocket; 7946/udp: gossip (with --gossip).
EXPOSE 8080 7946/udp
STOPSIGNAL SIGTERM
# No curl in the image: bash's /dev/tcp asks /readyz for its status line.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/weir"]
CMD ["--listen", "0.0.0.0:8080", "--store", "sqlite:/var/lib/weir/weir.db", \
     "--session-secret-file", "/var/lib/weir/session.key", "--log-format", "json", \
     "--drain-timeout", "20s", "--drain-spread", "10s"]
