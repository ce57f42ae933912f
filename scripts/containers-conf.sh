# Sourced by the container scripts: points podman at a containers.conf that
# sets no default ulimits (some sandboxes refuse them), unless the caller
# already chose one with CONTAINERS_CONF.
if [ -z "${CONTAINERS_CONF:-}" ]; then
  CONTAINERS_CONF="${TMPDIR:-/tmp}/tessera-containers.conf"
  printf '[containers]\ndefault_ulimits = []\n' > "$CONTAINERS_CONF"
  export CONTAINERS_CONF
fi
