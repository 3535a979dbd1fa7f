# syntax=docker/dockerfile:1
#
# flowhost as a drop-in for the walkerOS `walkeros/flow` image: the same environment variables
# (BUNDLE, PORT, MODE, CACHE_DIR, …), port 8080, working directory /app, the flow under
# /app/flow and the cache volume at /app/cache, user `walker` (uid/gid 1001).
#
#   docker build -t flowhost .
#   docker run --rm -p 8080:8080 -v flowhost-cache:/app/cache flowhost

# ---- Build -------------------------------------------------------------------------------------
# The toolchain the workspace asks for (rust-version 1.95) on Debian bookworm, whose main archive
# has the clang-19 and wasi-libc packages the guest shim (QuickJS for wasm32-wasip1) is built with.
FROM rust:1.95-bookworm AS build
WORKDIR /src

# The shim's toolchain, installed by the same script as on a developer machine or in CI, in a
# layer of its own so that source changes do not repeat it. Node is not needed to build.
COPY .ci/setup .ci/setup
RUN .ci/setup --build-only

# The cache mounts keep the crate downloads and compiled dependencies (wasmtime takes minutes)
# between builds; the binary is copied out of the cached target directory in the same step.
# The release profile keeps line tables for profilers; the image drops them (165 MB → 37 MB),
# function names stay for backtraces.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p flowhost \
    && strip --strip-debug -o /usr/local/bin/flowhost target/release/flowhost

# ---- Runtime -----------------------------------------------------------------------------------
# Same Debian release as the build, so the binary finds the glibc it was linked against.
FROM debian:bookworm-slim

# flowhost trusts its built-in root certificates; the system bundle is there for an .npmrc
# `cafile` or NODE_EXTRA_CA_CERTS pointing at it, and for adding a private CA.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# The original image's user and directories, so that volumes and mounted flows written for it
# keep their owner.
RUN groupadd --gid 1001 walker \
    && useradd --uid 1001 --gid walker --create-home --shell /usr/sbin/nologin walker \
    && mkdir -p /app/flow /app/cache \
    && chown walker:walker /app/flow /app/cache

COPY --from=build /usr/local/bin/flowhost /usr/local/bin/flowhost

WORKDIR /app
# BUNDLE is left unset: flowhost then serves /app/flow/flow.mjs, else /app/flow/bundle.mjs (the
# original's 4.x and 3.x names), else its embedded default flow. NODE_ENV is what the original
# sets, and flows read it from process.env.
ENV NODE_ENV=production \
    PORT=8080 \
    CACHE_DIR=/app/cache
USER walker
# Compiled artifacts, bundles, the npm package store and esbuild's binary (fetched on the first
# bundle of a flow config): keeping them makes restarts start in milliseconds.
VOLUME /app/cache
EXPOSE 8080

# As the original image, readiness decides health. The slim image has no curl or Node; bash
# speaks enough HTTP over /dev/tcp to read the status line.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${PORT:-8080}\" && printf 'GET /ready HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 5 _ status _ <&3 && [ \"$status\" = 200 ]"]

# flowhost handles SIGTERM, SIGINT and SIGHUP itself as PID 1 and reaps the esbuild processes it
# starts, so no init is needed (`docker run --init` adds one anyway).
ENTRYPOINT ["flowhost"]
CMD ["run"]
