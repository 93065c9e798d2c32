# tkm — multi-stage build: compile with the Rust toolchain, run on a slim Debian as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY sql sql
COPY config config
COPY benches benches
RUN cargo build --release --locked --bin tkm

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin tkm
WORKDIR /app
COPY --from=build /src/target/release/tkm /usr/local/bin/tkm
COPY config /app/config
USER 10001
# Listen on every interface inside the container; certificates and secrets are mounted (see
# docker-compose.yml and README.md), never baked into the image.
ENV TKM__SERVER__BIND=0.0.0.0:8443 \
    TKM__SERVER__OPS_BIND=0.0.0.0:9090 \
    TKM__TELEMETRY__JSON=true
EXPOSE 8443 9090
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:9090/health/ready || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["tkm"]
CMD ["serve"]
