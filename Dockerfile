# syntax=docker/dockerfile:1
# linechatd in a container: a Rust builder stage (dependencies cached apart from the source)
# and a slim Debian runtime running as an unprivileged user, its database on the /data volume.

FROM rust:1-slim-bookworm AS builder
# make: the allocator's build (tikv-jemalloc-sys runs jemalloc's configure and make).
RUN apt-get update \
    && apt-get install -y --no-install-recommends make=4.3-4.1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first: this layer is rebuilt only when Cargo.toml, Cargo.lock or the build
# settings (.cargo/config.toml: SQLite's compile-time options) change.
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
# The load generator is a workspace member: its manifest must be there, not its code.
COPY bench/Cargo.toml ./bench/
RUN mkdir -p src/bin bench/src \
    && echo 'fn main() {}' > bench/src/main.rs \
    && echo 'fn main() {}' > src/bin/linechatd.rs \
    && echo 'fn main() {}' > src/bin/linechat.rs \
    && touch src/lib.rs schema.sql \
    && cargo build --release --locked \
    && rm -rf src schema.sql
# Then the source.
COPY schema.sql ./
COPY src ./src
RUN touch src/lib.rs src/bin/*.rs \
    && cargo build --release --locked --bin linechatd

FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 linechat \
    && useradd --system --uid 10001 --gid linechat --home-dir /data --shell /usr/sbin/nologin linechat \
    && mkdir /data \
    && chown linechat:linechat /data
COPY --from=builder /src/target/release/linechatd /usr/local/bin/linechatd
# Every flag can be set as LINECHAT_<FLAG>; inside the container, listen on every interface.
ENV LINECHAT_LISTEN=0.0.0.0:7878 \
    LINECHAT_DB=/data/linechat.db \
    RUST_LOG=info
VOLUME ["/data"]
# 7878 plain text; 7879 TLS when LINECHAT_TLS_LISTEN, _CERT and _KEY are set (see compose.yaml).
EXPOSE 7878 7879
USER 10001:10001
WORKDIR /data
STOPSIGNAL SIGTERM
# Our own client of the #health verb: the daemon answers and its database answers.
HEALTHCHECK --interval=30s --timeout=10s --start-period=5s --retries=3 \
    CMD ["linechatd", "health", "--timeout", "5"]
ENTRYPOINT ["linechatd"]
