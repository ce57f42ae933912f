# Tessera in a container: build with the -dev packages, run on a slim image
# with only the runtime GStreamer plugins. Both stages read the same package
# list as scripts/setup.sh.
#
#   docker build -t tessera .
#   docker run --rm -p 8080:8080 -p 40000-40100:40000-40100/udp \
#     -e TESSERA_TOKEN_SECRET="$(openssl rand -hex 32)" \
#     -e TESSERA_ADMIN_KEY="$(openssl rand -hex 32)" \
#     -e TESSERA_ICE__PUBLIC_IP=192.0.2.10 \
#     -v tessera-recordings:/var/lib/tessera/recordings tessera
#
# (192.0.2.10: the address clients reach the host at.) docs/deploy.md
# explains each part. Config, layouts and pipelines live in /etc/tessera;
# mount over them to override.
#
# BUILD_IMAGE and RUNTIME_IMAGE name the base images: a Debian 12 with Rust
# (cargo on PATH) for the build, a Debian 12 for the runtime.

ARG BUILD_IMAGE=docker.io/library/rust:1-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY scripts/packages.txt scripts/packages.txt
RUN apt-get update \
 && awk '$1=="build" || $1=="run" {print $2}' scripts/packages.txt \
    | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked -p tessera --bin tessera

FROM ${RUNTIME_IMAGE}
COPY scripts/packages.txt /tmp/packages.txt
# passwd: useradd, which a minimal Debian base lacks.
RUN apt-get update \
 && { awk '$1=="run" {print $2}' /tmp/packages.txt; echo passwd; } \
    | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/packages.txt \
 && useradd --uid 10001 --user-group --home-dir /var/lib/tessera \
    --create-home --shell /usr/sbin/nologin tessera \
 && mkdir -p /var/lib/tessera/recordings \
 && chown -R tessera:tessera /var/lib/tessera
COPY --from=build /src/target/release/tessera /usr/local/bin/tessera
COPY config /etc/tessera/config
COPY layouts /etc/tessera/layouts
COPY pipelines /etc/tessera/pipelines
# The phone lobby's spoken prompts (sip.prompts_dir, docs/phone.md).
COPY assets /etc/tessera/assets
WORKDIR /etc/tessera
# Lessons are recorded here: mount a volume so they outlive the container.
VOLUME /var/lib/tessera/recordings
USER 10001:10001
# HTTP + WebSocket signaling.
EXPOSE 8080
# WebRTC media (ICE/UDP), limited to this range by the variables below.
EXPOSE 40000-40100/udp
# A container listens on every address (the port is published); the media
# range matches the published one; ICE-TCP is off because only UDP ports are
# published; recordings go to the volume, which the tessera user owns.
ENV TESSERA_LOG=info \
    TESSERA_SERVER__LISTEN=0.0.0.0:8080 \
    TESSERA_MEDIA__RTP_PORT_MIN=40000 \
    TESSERA_MEDIA__RTP_PORT_MAX=40100 \
    TESSERA_ICE__TCP=false \
    TESSERA_RECORDING__DIR=/var/lib/tessera/recordings
ENTRYPOINT ["tessera"]
CMD ["serve", "--config", "/etc/tessera/config/default.toml"]
