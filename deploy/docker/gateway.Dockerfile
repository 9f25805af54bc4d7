# pacs-gateway image: multi-stage (build with the Rust toolchain, run on slim
# Debian), non-root, data in /var/lib/pacs-gateway, healthcheck on /healthz.
# Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile \
#     --build-arg PACS_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t pacs-gateway .
FROM rust:1-bookworm AS build
ARG PACS_GIT_COMMIT=unknown
ENV PACS_GIT_COMMIT=${PACS_GIT_COMMIT}
WORKDIR /src
# cmake builds CharLS (JPEG-LS) for transcoding in retrieval.
RUN apt-get update && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked -p gateway --bin pacs-gateway \
 && strip target/release/pacs-gateway

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/pacs-gateway --create-home pacs
COPY --from=build /src/target/release/pacs-gateway /usr/local/bin/pacs-gateway
COPY --from=build /src/schemas/gateway.toml /usr/share/doc/pacs-gateway/gateway.toml
USER pacs
WORKDIR /var/lib/pacs-gateway
ENV PACS_GATEWAY_DATA_DIR=/var/lib/pacs-gateway \
    PACS_LOG_FORMAT=json \
    PACS_GATEWAY_METRICS_LISTEN=0.0.0.0:9464
VOLUME ["/var/lib/pacs-gateway"]
# DICOM TLS, admin API (HTTPS), metrics (HTTP; publish it only to the monitoring network).
EXPOSE 2762 8443 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:9464/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/pacs-gateway"]
CMD ["serve"]
