# pacs-client image: multi-stage, non-root, data (spool, outbox, facility key) in
# /var/lib/pacs-client, healthcheck on the edge port. Mount the config at
# /etc/pacs-client/client.toml and the facility certificate files it names.
# Build from the repository root:
#   docker build -f deploy/docker/client.Dockerfile \
#     --build-arg PACS_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t pacs-client .
FROM rust:1-bookworm AS build
ARG PACS_GIT_COMMIT=unknown
ENV PACS_GIT_COMMIT=${PACS_GIT_COMMIT}
WORKDIR /src
# cmake builds CharLS (JPEG-LS) for transcoding in retrieval.
RUN apt-get update && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked -p client --bin pacs-client \
 && strip target/release/pacs-client

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10002 --home-dir /var/lib/pacs-client --create-home pacs
COPY --from=build /src/target/release/pacs-client /usr/local/bin/pacs-client
COPY --from=build /src/schemas/client.toml /usr/share/doc/pacs-client/client.toml
USER pacs
WORKDIR /var/lib/pacs-client
ENV PACS_CLIENT_DATA_DIR=/var/lib/pacs-client \
    PACS_CLIENT_CONFIG=/etc/pacs-client/client.toml \
    PACS_LOG_FORMAT=json
VOLUME ["/var/lib/pacs-client"]
# The edge SCP modalities and viewers call.
EXPOSE 11112
# The edge port accepts TCP connections (bash's /dev/tcp; no extra tools needed).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD bash -c 'exec 3<>/dev/tcp/127.0.0.1/11112' || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/pacs-client"]
CMD ["serve"]
