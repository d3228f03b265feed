# The `orchestrator` binary for docker-compose-app.yaml.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release -p orchestrator

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 bash \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/orchestrator /usr/local/bin/orchestrator
# Tasks run as the process's user: never root. The logs folder is the user's (a volume
# mounted there starts with this owner).
RUN useradd --system --uid 10001 --home-dir /opt/updraft --shell /usr/sbin/nologin updraft \
    && mkdir -p /opt/updraft/logs /opt/updraft/dags && chown -R updraft:updraft /opt/updraft
USER updraft:updraft
WORKDIR /opt/updraft
ENV UPDRAFT_LOG_FORMAT=json
ENTRYPOINT ["orchestrator"]
CMD ["serve", "--bind", "0.0.0.0:8080"]
