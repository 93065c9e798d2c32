# tkm image, in stages:
#   build     compiles tkm with the Rust toolchain (scripts/build-release.sh, as scripts/run.sh),
#             with the cargo features of the build argument CARGO_FEATURES (none: production);
#   base      slim Debian with the binary, the configuration and the non-root user tkm (uid 10001);
#   dev-init  base + openssl and the dev scripts: docker-compose.yml's tkm-init service, which makes
#             the development PKI and secrets in the volumes mounted on /app/certs/dev and /app/.dev;
#   runtime   the image `docker build .` makes (last stage): non-root, HEALTHCHECK on /health/ready.
# Needs BuildKit (the default builder of Docker 23+ and of `docker compose`). Only files tracked by
# git are copied and .dockerignore keeps secrets and build output out of the context:
# scripts/check-docker.sh (run by scripts/test.sh) checks both.

FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY sql sql
COPY config config
COPY scripts/build-release.sh scripts/build-release.sh
# Cargo features, none by default: the production image has no circuit simulator. The dev stack of
# docker-compose.yml passes CARGO_FEATURES=simulator (config/dev.toml runs the simulator).
ARG CARGO_FEATURES=""
# The crate registry and the target directory are build caches, kept between builds so that a code
# change does not recompile every dependency; the binary is copied out of the cached target.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    scripts/build-release.sh ${CARGO_FEATURES:+--features "$CARGO_FEATURES"} \
    && cp target/release/tkm /usr/local/bin/tkm

FROM debian:bookworm-slim AS base
# /app/certs/dev, /app/.dev and /app/var (storage.dir: the published lists) belong to tkm (mode 0700): a named volume mounted there on first use
# takes this owner and mode, so what tkm-init writes there as tkm is readable by tkm only.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tkm \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin tkm \
    && mkdir -p /app/certs/dev /app/.dev /app/var \
    && chown 10001:10001 /app/certs/dev /app/.dev /app/var \
    && chmod 0700 /app/certs/dev /app/.dev /app/var
WORKDIR /app
COPY --from=build /usr/local/bin/tkm /usr/local/bin/tkm
# --chmod: readable by tkm whatever the umask of the checkout the image is built from.
COPY --chmod=0644 config/default.toml config/dev.toml config/

FROM base AS dev-init
RUN apt-get update && apt-get install -y --no-install-recommends openssl \
    && rm -rf /var/lib/apt/lists/*
COPY --chmod=0755 certs/gen-dev-certs.sh certs/gen-dev-certs.sh
COPY --chmod=0755 scripts/dev-secrets.sh scripts/dev-secrets.sh
USER 10001:10001
# Both scripts are idempotent: what exists is kept, so every `docker compose up` may run this.
CMD ["bash", "-c", "certs/gen-dev-certs.sh && scripts/dev-secrets.sh /usr/local/bin/tkm"]

FROM base AS runtime
USER 10001:10001
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
