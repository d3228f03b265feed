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
WORKDIR /opt/updraft
ENTRYPOINT ["orchestrator"]
CMD ["serve", "--bind", "0.0.0.0:8080"]
