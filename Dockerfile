# Tessera in a container: build with the -dev packages, run on a slim image
# with only the runtime GStreamer plugins. Both stages read the same package
# list as scripts/setup.sh.
#
#   docker build -t tessera .
#   docker run --rm -p 8080:8080 -p 40000-40100:40000-40100/udp \
#     -e TESSERA_SERVER__LISTEN=0.0.0.0:8080 tessera
#
# Config, layouts and pipelines live in /etc/tessera; mount over them to override.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY scripts/packages.txt scripts/packages.txt
RUN apt-get update \
 && awk '$1=="build" || $1=="run" {print $2}' scripts/packages.txt \
    | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --bin tessera

FROM debian:bookworm-slim
COPY scripts/packages.txt /tmp/packages.txt
RUN apt-get update \
 && awk '$1=="run" {print $2}' /tmp/packages.txt \
    | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/packages.txt \
 && useradd --system --home /var/lib/tessera --create-home tessera
COPY --from=build /src/target/release/tessera /usr/local/bin/tessera
COPY config /etc/tessera/config
COPY layouts /etc/tessera/layouts
COPY pipelines /etc/tessera/pipelines
WORKDIR /etc/tessera
USER tessera
# HTTP + WebSocket signaling.
EXPOSE 8080
# WebRTC media (ICE/UDP), limited to this range by the two variables below.
EXPOSE 40000-40100/udp
ENV TESSERA_LOG=info \
    TESSERA_MEDIA__RTP_PORT_MIN=40000 \
    TESSERA_MEDIA__RTP_PORT_MAX=40100
ENTRYPOINT ["tessera"]
CMD ["serve", "--config", "/etc/tessera/config/default.toml"]
