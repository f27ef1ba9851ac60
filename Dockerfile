# The AREA worker image: a release build in a Rust stage, then the binary
# alone on Debian slim, run as a non-root user. Migrations are embedded in the
# binary: `area-worker migrate` applies them, so the image needs no other file.
#
#   docker build -t area-worker .
#   docker build --build-arg FEATURES=slack -t area-worker:slack .
#
# FEATURES chooses the reactions compiled in (see the README); a binary runs
# only the jobs of its reactions and leaves the rest to other workers.

ARG RUST_VERSION=1

FROM rust:${RUST_VERSION}-bookworm AS builder
ARG FEATURES=webhook,email,slack
WORKDIR /src
COPY . .
# The caches keep crates.io downloads and build output between builds; the
# binary is copied out of the cached target folder before the step ends.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p area-worker \
        --no-default-features --features "${FEATURES}" \
    && cp target/release/area-worker /usr/local/bin/area-worker

FROM debian:bookworm-slim
# Root certificates for HTTPS webhooks, SMTP over TLS and Slack; nothing else:
# the binary links no OpenSSL and no libpq. The package is not pinned: the
# image should take Debian's current certificates whenever it is rebuilt.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home \
        --shell /usr/sbin/nologin area
COPY --from=builder /usr/local/bin/area-worker /usr/local/bin/area-worker
USER 10001:10001
# Inside a container the API must listen beyond loopback for probes; mutating
# routes then need AREA_API_TOKEN.
ENV AREA_API_ADDR=0.0.0.0:8080 \
    AREA_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["area-worker"]
CMD ["run"]
